import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { assertHostname, assertServiceTag } from '../core/validation.ts';

/** A build's private directory and the files nix-build is pointed at. */
export interface BuildWorkspace {
  /** e.g. `<data dir>/builds-work/42` */
  dir: string;
  /** The generated top-level module passed as `--arg configuration`. */
  configurationFile: string;
  /** The machine's own NixOS module, written verbatim. */
  machineModuleFile: string;
  /** nix-build's `-o` link. */
  outLink: string;
  remove(): Promise<void>;
}

/** Quotes a string as a Nix string literal (no interpolation). */
export function nixString(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\$\{/g, '\\${').replace(/\n/g, '\\n').replace(/\r/g, '\\r').replace(/\t/g, '\\t')}"`;
}

/** The generated configuration.nix: imports the machine's module and sets the host name. */
export function renderConfigurationNix(build: { id: number; hostname: string; serviceTag: string }): string {
  return [
    `# Generated for build ${build.id} of ${assertServiceTag(build.serviceTag)}; the machine's own module is machine.nix.`,
    '{ ... }:',
    '{',
    '  imports = [ ./machine.nix ];',
    `  networking.hostName = ${nixString(assertHostname(build.hostname))};`,
    '}',
    '',
  ].join('\n');
}

/** Creates a fresh, empty directory for one build and writes its configuration into it. */
export async function prepareWorkspace(
  workRoot: string,
  build: { id: number; hostname: string; serviceTag: string; config: string },
): Promise<BuildWorkspace> {
  if (!Number.isSafeInteger(build.id) || build.id < 1) throw new Error(`builder: bad build id ${build.id}`);
  const dir = join(workRoot, String(build.id));
  await rm(dir, { recursive: true, force: true });
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const configurationFile = join(dir, 'configuration.nix');
  const machineModuleFile = join(dir, 'machine.nix');
  await writeFile(machineModuleFile, build.config.endsWith('\n') ? build.config : `${build.config}\n`, { mode: 0o600 });
  await writeFile(configurationFile, renderConfigurationNix(build), { mode: 0o600 });
  return {
    dir,
    configurationFile,
    machineModuleFile,
    outLink: join(dir, 'result'),
    remove: () => rm(dir, { recursive: true, force: true }),
  };
}
