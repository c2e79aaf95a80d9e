/* Metal Enrollment dashboard behaviour: the Nix editor, the live build log, small conveniences.
   Loaded from our own origin (the CSP allows no inline scripts); everything untrusted is inserted as text. */
/* global document, window, EventSource, location */
'use strict';

const NIX_KEYWORDS = new Set(['let', 'in', 'with', 'rec', 'inherit', 'if', 'then', 'else', 'assert', 'or']);
const NIX_BUILTINS = new Set(['true', 'false', 'null', 'import', 'builtins', 'throw', 'abort', 'map', 'toString', 'derivation']);
const NIX_TOKEN = new RegExp(
  [
    '(?<comment>#[^\\n]*|\\/\\*[\\s\\S]*?(?:\\*\\/|$))',
    "(?<string>''[\\s\\S]*?(?:''(?![$'\\\\])|$)|\"(?:[^\"\\\\]|\\\\[\\s\\S])*(?:\"|$))",
    '(?<path>(?:\\.\\.?|~)?\\/[A-Za-z0-9._+-]+(?:\\/[A-Za-z0-9._+-]+)*|<[A-Za-z0-9._+-]+(?:\\/[A-Za-z0-9._+-]+)*>)',
    '(?<number>\\b\\d+(?:\\.\\d+)?\\b)',
    "(?<ident>[A-Za-z_][A-Za-z0-9_'-]*)",
  ].join('|'),
  'g',
);

/** Splits Nix source into [class, text] pairs; text between tokens gets no class. */
function tokenizeNix(source) {
  const out = [];
  let last = 0;
  for (const match of source.matchAll(NIX_TOKEN)) {
    if (match.index > last) out.push(['', source.slice(last, match.index)]);
    const g = match.groups;
    const text = match[0];
    let cls = '';
    if (g.comment) cls = 'tok-comment';
    else if (g.string) cls = 'tok-string';
    else if (g.path) cls = 'tok-path';
    else if (g.number) cls = 'tok-number';
    else if (NIX_KEYWORDS.has(text)) cls = 'tok-keyword';
    else if (NIX_BUILTINS.has(text)) cls = 'tok-builtin';
    else if (/^\s*(?:=(?!=)|\.[A-Za-z_"])/.test(source.slice(match.index + text.length, match.index + text.length + 40))) cls = 'tok-attr';
    out.push([cls, text]);
    last = match.index + text.length;
  }
  if (last < source.length) out.push(['', source.slice(last)]);
  return out;
}

/** Replaces an element's children with highlighted Nix, built from text nodes only. */
function paintNix(target, source) {
  const fragment = document.createDocumentFragment();
  for (const [cls, text] of tokenizeNix(source)) {
    if (!cls) {
      fragment.append(document.createTextNode(text));
      continue;
    }
    const span = document.createElement('span');
    span.className = cls;
    span.textContent = text;
    fragment.append(span);
  }
  // A trailing newline needs something after it to take up a line in the overlay.
  fragment.append(document.createTextNode('\n'));
  target.replaceChildren(fragment);
}

/** A textarea with line numbers and a highlighted overlay that follows its text and scrolling. */
function setUpEditor(editor) {
  const textarea = editor.querySelector('textarea');
  const gutter = editor.querySelector('.editor-gutter');
  const code = editor.querySelector('.editor-highlight code');
  const overlay = editor.querySelector('.editor-highlight');
  if (!textarea || !gutter || !code || !overlay) return;
  let lines = 0;
  const refresh = () => {
    paintNix(code, textarea.value);
    const count = textarea.value.split('\n').length;
    if (count !== lines) {
      lines = count;
      gutter.textContent = Array.from({ length: count }, (_, i) => String(i + 1)).join('\n');
    }
    syncScroll();
  };
  const syncScroll = () => {
    overlay.scrollTop = textarea.scrollTop;
    overlay.scrollLeft = textarea.scrollLeft;
    gutter.scrollTop = textarea.scrollTop;
  };
  textarea.addEventListener('input', refresh);
  textarea.addEventListener('scroll', syncScroll);
  textarea.addEventListener('keydown', (event) => {
    if (event.key !== 'Tab' || event.shiftKey || textarea.readOnly) return;
    // Tab indents inside the editor; Escape then Tab leaves it, so keyboard users are never trapped.
    if (editor.dataset.tabEscape === '1') {
      editor.dataset.tabEscape = '';
      return;
    }
    event.preventDefault();
    const { selectionStart, selectionEnd, value } = textarea;
    textarea.value = `${value.slice(0, selectionStart)}  ${value.slice(selectionEnd)}`;
    textarea.selectionStart = textarea.selectionEnd = selectionStart + 2;
    refresh();
  });
  textarea.addEventListener('keyup', (event) => {
    if (event.key === 'Escape') editor.dataset.tabEscape = '1';
  });
  editor.classList.add('is-highlighted');
  refresh();
}

/** Appends a running build's log as the server streams it, and shows its status as it changes. */
function followBuildLog(log) {
  const url = log.dataset.stream;
  if (!url || typeof EventSource === 'undefined') return;
  const source = new EventSource(url);
  const state = document.getElementById('log-state');
  const nearBottom = () => log.scrollTop + log.clientHeight >= log.scrollHeight - 24;
  source.addEventListener('log', (event) => {
    const stick = nearBottom();
    log.append(document.createTextNode(event.data));
    if (stick) log.scrollTop = log.scrollHeight;
  });
  source.addEventListener('reset', (event) => {
    log.textContent = event.data;
  });
  source.addEventListener('status', (event) => {
    const info = JSON.parse(event.data);
    const badge = document.querySelector('#build-status .badge');
    if (badge) {
      badge.textContent = info.status;
      badge.dataset.status = info.status;
      badge.className = `badge badge-${/^[a-z]+$/.test(info.status) ? info.status : 'unknown'}`;
    }
    const duration = document.getElementById('build-duration');
    if (duration) duration.textContent = info.duration;
  });
  source.addEventListener('end', () => {
    source.close();
    if (state) state.textContent = 'Finished; loading the result…';
    location.reload();
  });
}

function start() {
  for (const editor of document.querySelectorAll('[data-editor]')) setUpEditor(editor);
  for (const pre of document.querySelectorAll('pre[data-nix]')) paintNix(pre, pre.textContent);
  const log = document.getElementById('build-log');
  if (log) {
    log.scrollTop = log.scrollHeight;
    followBuildLog(log);
  }
  for (const input of document.querySelectorAll('[data-select-on-focus]')) input.addEventListener('focus', () => input.select());
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
window.metalTokenizeNix = tokenizeNix;
