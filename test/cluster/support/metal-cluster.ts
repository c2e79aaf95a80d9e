import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { runMetal, startServerProcess, type ServerProcess } from '../../support/server-process.ts';

/** One `metal` process of the cluster. */
export interface Replica {
  name: string;
  role: 'api' | 'boot' | 'builder';
  proc: ServerProcess;
  /** Its listener, for api and boot. */
  url?: string;
  /** Its builder name as leases and events record it, for builders (`<host>-<pid>`). */
  builderName?: string;
}

export interface ClusterOptions {
  databaseUrl: string;
  /** Shared by every process: the image volume. */
  imagesDir: string;
  /** Each process gets its own data directory below this. */
  workDir: string;
  /** The address machines use for the boot servers (the load balancer's). */
  bootUrl: string;
  adminPassword: string;
  /** Environment for every process (lease, entry, concurrency). */
  env: Record<string, string>;
}

export const CLUSTER_NIX_ENTRY = fileURLToPath(new URL('../nix/slow-standin.nix', import.meta.url));

/** A small registration image (kernel, initrd, boot.json) for the boot servers to hand out. */
export function writeRegistrationImage(imagesDir: string): { initrdBytes: number } {
  const dir = join(imagesDir, 'registration');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'bzImage'), randomBytes(96 * 1024));
  const initrd = randomBytes(160 * 1024);
  writeFileSync(join(dir, 'initrd'), initrd);
  writeFileSync(join(dir, 'boot.json'), JSON.stringify({ kernel_params: ['console=ttyS0'] }));
  return { initrdBytes: initrd.length };
}

function commonEnv(o: ClusterOptions, name: string): Record<string, string> {
  const dataDir = join(o.workDir, name);
  mkdirSync(dataDir, { recursive: true });
  return {
    METAL_DATA_DIR: dataDir,
    METAL_DATABASE_URL: o.databaseUrl,
    METAL_IMAGES_DIR: o.imagesDir,
    METAL_BOOT_URL: o.bootUrl,
    METAL_ADMIN_PASSWORD: o.adminPassword,
    ...o.env,
  };
}

/** `metal migrate`, as the migration Job runs it before the roll. */
export async function migrateCluster(o: ClusterOptions): Promise<void> {
  const r = await runMetal(['migrate'], commonEnv(o, 'migrate'));
  if (r.code !== 0) throw new Error(`metal migrate failed (${r.code}): ${r.stderr}`);
}

/** Starts one replica and waits until it logs `metal: ready`. */
export async function startReplica(o: ClusterOptions, name: string, role: Replica['role']): Promise<Replica> {
  const args = role === 'api' ? ['serve', '--roles', 'api'] : [role];
  const proc = await startServerProcess(args, commonEnv(o, name));
  const url = role === 'api' ? proc.addresses.api : role === 'boot' ? proc.addresses.boot : undefined;
  const hostname = (await import('node:os')).hostname();
  return { name, role, proc, ...(url ? { url } : {}), ...(role === 'builder' ? { builderName: `${hostname}-${proc.child.pid}` } : {}) };
}

/** SIGKILLs a replica and waits for it to be gone. */
export async function killReplica(replica: Replica): Promise<void> {
  replica.proc.child.kill('SIGKILL');
  await replica.proc.exited;
}

/** Stops a replica gracefully (SIGTERM), or by SIGKILL after 35 s. */
export async function stopReplica(replica: Replica): Promise<void> {
  const child = replica.proc.child;
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 35_000);
  await replica.proc.exited;
  clearTimeout(timer);
}
