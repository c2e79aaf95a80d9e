import type { FC } from 'hono/jsx';
import { CONFIG_FILE_EXTENSIONS, ENTRY_FILE } from '../../core/config-files.ts';

/** One file of a configuration as the form shows it. */
export interface FormFile {
  /** e.g. `hardware.nix` */
  name: string;
  text: string;
}

/** A code editor (gutter and Nix highlighting from app.js) around one textarea. */
const CodeEditor: FC<{ id: string; name: string; text: string; readonly: boolean; rows: number; placeholder?: string; describedBy?: string }> = (p) => (
  <div class="editor" data-editor>
    <pre class="editor-gutter" aria-hidden="true"></pre>
    <div class="editor-body">
      <pre class="editor-highlight" aria-hidden="true">
        <code></code>
      </pre>
      <textarea id={p.id} name={p.name} rows={p.rows} placeholder={p.placeholder} spellcheck={false} autocomplete="off" wrap="off" readonly={p.readonly} aria-describedby={p.describedBy}>
        {`\n${p.text}`}
      </textarea>
    </div>
  </div>
);

/** A file name input that says what a name may be (the server checks it again). */
const NAME_PATTERN = '[A-Za-z0-9_\\-][A-Za-z0-9._\\-]*(/[A-Za-z0-9_\\-][A-Za-z0-9._\\-]*)?';

/**
 * The configuration's files: the entry (`configuration.nix`, field `nixos_config`) and each other file
 * with its name, text and a box to remove it (`file_name_<n>`, `file_text_<n>`, `file_remove_<n>`),
 * then an empty slot to add one. Everything is text in inputs and textareas, escaped by JSX.
 */
export const ConfigEditor: FC<{ entry: string; files: FormFile[]; canEdit: boolean }> = ({ entry, files, canEdit }) => {
  const next = files.length + 1;
  return (
    <div class="config-files">
      <p class="file-tabs" aria-label="Files">
        Files:{' '}
        {[ENTRY_FILE, ...files.map((f) => f.name)].map((name, i) => (
          <>
            {i > 0 && ' · '}
            <a class="mono" href={`#file-${i}`}>
              {name}
            </a>
          </>
        ))}
      </p>
      <label for="nixos_config" id="file-0">
        NixOS configuration: <span class="mono">{ENTRY_FILE}</span>
      </label>
      <small>The entry; it imports the other files, e.g. <span class="mono">imports = [ ./hardware.nix ];</span></small>
      <CodeEditor id="nixos_config" name="nixos_config" text={entry} readonly={!canEdit} rows={18} placeholder={'# Empty: the build is an empty NixOS module. For example:\n# { pkgs, ... }:\n# {\n#   services.openssh.enable = true;\n# }'} describedBy="config-help" />
      {files.map((f, i) => (
        <fieldset class="config-file" id={`file-${i + 1}`}>
          <legend class="mono">{f.name || 'unnamed file'}</legend>
          <label for={`file_name_${i + 1}`}>File name</label>
          <input id={`file_name_${i + 1}`} name={`file_name_${i + 1}`} value={f.name} maxlength={128} pattern={NAME_PATTERN} autocomplete="off" spellcheck={false} readonly={!canEdit} class="mono" />
          <CodeEditor id={`file_text_${i + 1}`} name={`file_text_${i + 1}`} text={f.text} readonly={!canEdit} rows={10} />
          {canEdit && (
            <label>
              <input type="checkbox" name={`file_remove_${i + 1}`} value="yes" /> Remove this file when saving
            </label>
          )}
        </fieldset>
      ))}
      {canEdit && (
        <details class="config-file-new">
          <summary>Add a file…</summary>
          <label for={`file_name_${next}`}>File name</label>
          <input id={`file_name_${next}`} name={`file_name_${next}`} maxlength={128} pattern={NAME_PATTERN} placeholder="hardware.nix" autocomplete="off" spellcheck={false} class="mono" />
          <CodeEditor id={`file_text_${next}`} name={`file_text_${next}`} text="" readonly={false} rows={10} placeholder={'{ ... }:\n{\n}'} />
        </details>
      )}
      <small id="config-help">
        A NixOS module, and the files it imports or reads: names one folder deep at most (<span class="mono">modules/web.nix</span>), ending in{' '}
        {CONFIG_FILE_EXTENSIONS.join(' ')}. The builder adds network boot and the enrollment service around them.
      </small>
    </div>
  );
};

/** A machine's other files (everything but the entry), in stored order. */
export function otherFiles(files: Record<string, string> | null): FormFile[] {
  return Object.entries(files ?? {})
    .filter(([name]) => name !== ENTRY_FILE)
    .map(([name, text]) => ({ name, text }));
}
