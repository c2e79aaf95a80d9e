import type { Command, Option } from 'commander';

/** One command of the tree as completion needs it. */
interface CompletionNode {
  /** Words from the root, e.g. `machines ls`; empty for `metal` itself. */
  path: string;
  /** Subcommand names and option flags offered after this command. */
  words: string[];
  /** Options that take a value: the values to offer (`[]`: any value; `null`: a file name). */
  values: Map<string, string[] | null>;
}

const SAFE_WORD = /^[A-Za-z0-9][A-Za-z0-9_.:=-]*$|^--?[A-Za-z0-9][A-Za-z0-9-]*$/;

function safe(word: string): string {
  if (!SAFE_WORD.test(word)) throw new Error(`completion: unexpected word ${JSON.stringify(word)} in the command tree`);
  return word;
}

function optionValues(option: Option): string[] | null {
  if (option.argChoices) return option.argChoices.map(safe);
  return /\bFILE\b/.test(option.flags) ? null : [];
}

/** Walks the commander tree into the list of commands with what can follow each. */
export function completionNodes(program: Command): CompletionNode[] {
  const nodes: CompletionNode[] = [];
  const visit = (cmd: Command, path: string) => {
    const values = new Map<string, string[] | null>();
    const words: string[] = [];
    for (const sub of cmd.commands) words.push(safe(sub.name()));
    for (const option of cmd.options) {
      for (const flag of [option.long, option.short]) {
        if (!flag) continue;
        words.push(safe(flag));
        if (option.required || option.optional) values.set(flag, optionValues(option));
      }
    }
    words.push('--help');
    nodes.push({ path, words, values });
    for (const sub of cmd.commands) visit(sub, path ? `${path} ${sub.name()}` : sub.name());
  };
  visit(program, '');
  return nodes;
}

function caseArms(nodes: CompletionNode[], body: (node: CompletionNode) => string): string {
  return nodes.map((n) => `    "${n.path}") ${body(n)} ;;`).join('\n');
}

function valueArms(nodes: CompletionNode[], file: string, any: string, list: (values: string[]) => string): string {
  const arms: string[] = [];
  for (const node of nodes) {
    for (const [flag, values] of node.values) {
      arms.push(`    "${node.path}|${flag}") ${values === null ? file : values.length ? list(values) : any} ;;`);
    }
  }
  return arms.join('\n');
}

function pathArms(nodes: CompletionNode[]): string {
  return nodes
    .filter((n) => n.path)
    .map((n) => `"${n.path}"`)
    .join('|');
}

/** A bash completion script for the program: `source <(metal completion bash)`. */
export function bashCompletion(program: Command): string {
  const name = safe(program.name());
  const nodes = completionNodes(program);
  return `# bash completion for ${name}; load with: source <(${name} completion bash)
_${name}_complete() {
  local cur prev path="" w next i words=""
  cur="\${COMP_WORDS[COMP_CWORD]}"
  prev="\${COMP_WORDS[COMP_CWORD-1]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    next="\${path:+$path }$w"
    case "$next" in
      ${pathArms(nodes)}) path="$next" ;;
    esac
  done
  case "$path|$prev" in
${valueArms(nodes, 'COMPREPLY=($(compgen -f -- "$cur")); return 0', 'return 0', (v) => `COMPREPLY=($(compgen -W "${v.join(' ')}" -- "$cur")); return 0`)}
  esac
  case "$path" in
${caseArms(nodes, (n) => `words="${n.words.join(' ')}"`)}
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -F _${name}_complete ${name}
`;
}

/** A zsh completion script for the program: `source <(metal completion zsh)` after compinit. */
export function zshCompletion(program: Command): string {
  const name = safe(program.name());
  const nodes = completionNodes(program);
  return `#compdef ${name}
# zsh completion for ${name}; load with: source <(${name} completion zsh)  (after compinit)
_${name}() {
  local path_="" w next i prev
  local -a choices
  for ((i = 2; i < CURRENT; i++)); do
    w="\${words[i]}"
    next="\${path_:+$path_ }$w"
    case "$next" in
      ${pathArms(nodes)}) path_="$next" ;;
    esac
  done
  prev="\${words[CURRENT-1]}"
  case "$path_|$prev" in
${valueArms(nodes, '_files; return', 'return', (v) => `choices=(${v.join(' ')}); compadd -a choices; return`)}
  esac
  case "$path_" in
${caseArms(nodes, (n) => `choices=(${n.words.join(' ')})`)}
  esac
  compadd -a choices
}
compdef _${name} ${name}
`;
}
