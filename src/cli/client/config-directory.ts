import { closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, realpathSync, statSync, writeFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { configFileNameProblem, ENTRY_FILE, MAX_CONFIG_FILES, MAX_CONFIG_FILES_BYTES, type ConfigFiles } from '../../core/config-files.ts';
import { CliError } from './api-client.ts';

/** What reading a configuration directory found: the files to send, and what it left out and why. */
export interface ConfigDirectory {
  files: ConfigFiles;
  /** e.g. `README.md (not an allowed name: …)` */
  skipped: string[];
}

/**
 * Reads a configuration directory: every file with an allowed name (see config-files.ts) at the top
 * and one folder down, `configuration.nix` required. Hidden entries (`.git`) are passed over; a
 * symlink is followed only to a file inside the directory, any other refuses the whole directory.
 */
export function readConfigDirectory(dir: string): ConfigDirectory {
  let root: string;
  try {
    root = realpathSync(dir);
  } catch (err) {
    throw new CliError(`cannot read ${dir}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const files: ConfigFiles = {};
  const skipped: string[] = [];
  let bytes = 0;
  const visit = (folder: string, depth: number) => {
    for (const name of readdirSync(join(root, folder)).sort()) {
      if (name.startsWith('.')) continue;
      const rel = folder ? `${folder}/${name}` : name;
      const path = join(root, folder, name);
      const link = lstatSync(path);
      if (link.isSymbolicLink()) {
        const target = realpathSync(path);
        if (target !== root && !target.startsWith(`${root}${sep}`)) {
          throw new CliError(`${join(dir, rel)} is a symlink to ${target}, outside ${dir}: refusing to send files from elsewhere`);
        }
      }
      const st = statSync(path);
      if (st.isDirectory()) {
        if (depth === 0) visit(rel, 1);
        else skipped.push(`${rel}/ (configuration files are at most one folder deep)`);
        continue;
      }
      if (!st.isFile()) {
        skipped.push(`${rel} (not a regular file)`);
        continue;
      }
      const problem = configFileNameProblem(rel);
      if (problem) {
        skipped.push(`${rel} (${problem})`);
        continue;
      }
      bytes += st.size;
      if (bytes > MAX_CONFIG_FILES_BYTES) throw new CliError(`the files of ${dir} are larger than ${MAX_CONFIG_FILES_BYTES} bytes in all, the most a configuration may be`);
      files[rel] = readFileSync(path, 'utf8');
    }
  };
  visit('', 0);
  if (!Object.hasOwn(files, ENTRY_FILE)) throw new CliError(`${dir} has no ${ENTRY_FILE}: it is the entry that imports the other files`);
  if (Object.keys(files).length > MAX_CONFIG_FILES) throw new CliError(`${dir} has ${Object.keys(files).length} configuration files; at most ${MAX_CONFIG_FILES} are allowed`);
  return { files, skipped };
}

/**
 * Writes a machine's configuration into `dir` (created when missing), one file per entry, replacing
 * files of the same name. Names are checked again; a symlink in the way is refused, never followed.
 */
export function writeConfigDirectory(dir: string, files: ConfigFiles): string[] {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const written: string[] = [];
  for (const [name, text] of Object.entries(files)) {
    const problem = configFileNameProblem(name);
    if (problem) throw new CliError(`the server sent a file named ${JSON.stringify(name)}, which is not allowed: ${problem}`);
    const slash = name.indexOf('/');
    if (slash > 0) {
      const folder = join(dir, name.slice(0, slash));
      if (isSymlink(folder)) throw new CliError(`${folder} is a symlink: refusing to write through it`);
      mkdirSync(folder, { recursive: true, mode: 0o755 });
    }
    const path = join(dir, name);
    if (isSymlink(path)) throw new CliError(`${path} is a symlink: refusing to write through it`);
    if (relative(dir, path).startsWith('..')) throw new CliError(`${name} would be written outside ${dir}`);
    // O_NOFOLLOW: a symlink put there meanwhile fails the write instead of redirecting it.
    const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
    try {
      writeFileSync(fd, text);
    } finally {
      closeSync(fd);
    }
    written.push(name);
  }
  return written;
}

function isSymlink(path: string): boolean {
  try {
    return lstatSync(path).isSymbolicLink();
  } catch {
    return false;
  }
}
