import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeTcpPort, freeUdpPort } from './free-port.ts';
import { missingToolsSkipReason } from './host-tools.ts';

/**
 * OpenIPMI's `ipmi_sim` as a BMC for tests, on a loopback UDP port with one admin user. Power is one of:
 * - `startcmd`: power on runs the given command (through a script that `exec`s it, so power off can signal
 *   it) and the power state follows that process: the machine is a real process (a `sleep`, or QEMU);
 * - `chassis_control`: a script keeps the power state and boot device in files (supports `bootdev pxe`,
 *   which `startcmd` mode does not).
 */
export interface IpmiSimulatorOptions {
  username?: string;
  password: string;
  /** `startcmd` mode: the machine's command line, e.g. `['sleep', '600']` or a QEMU invocation. */
  machine?: readonly string[];
  /** `chassis_control` mode instead of `startcmd`. */
  chassisControl?: boolean;
}

export interface IpmiSimulator {
  host: '127.0.0.1';
  port: number;
  username: string;
  /** PID of the machine process while it runs (startcmd mode), else undefined. */
  machinePid(): number | undefined;
  /** Lines the chassis_control script received, e.g. `set boot pxe` (chassis_control mode). */
  controlLog(): string[];
  /** Whether the chassis_control script holds power on (chassis_control mode). */
  controlPowerOn(): boolean;
  stop(): Promise<void>;
}

/** Why the simulator cannot run here (ipmi_sim or ipmitool missing), or undefined. Loud outside CI, an error in CI. */
export function ipmiSimSkipReason(): string | undefined {
  return missingToolsSkipReason('IPMI simulator tests', { ipmi_sim: 'openipmi', ipmitool: 'ipmitool', bash: 'bash' });
}

const EMU = ['mc_setbmc 0x20', 'mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr', 'sel_enable 0x20 1000 0x0a', 'mc_enable 0x20', ''].join('\n');

/** Characters allowed inside lan.conf's quoted strings and the generated scripts' paths. */
const SAFE = /^[A-Za-z0-9._/:=,+@%-]+$/;

export async function startIpmiSimulator(options: IpmiSimulatorOptions): Promise<IpmiSimulator> {
  const username = options.username ?? 'admin';
  for (const word of [username, options.password]) {
    if (!SAFE.test(word)) throw new Error(`ipmi-simulator: ${JSON.stringify(word)} has characters the generated files cannot carry`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'metal-ipmi-sim-'));
  if (!SAFE.test(dir)) throw new Error(`ipmi-simulator: the temporary directory ${JSON.stringify(dir)} cannot be written into lan.conf and scripts`);
  const [port, serialPort] = [await freeUdpPort(), await freeTcpPort()];
  const pidFile = join(dir, 'machine.pid');
  const controlDir = join(dir, 'control');
  mkdirSync(join(dir, 'state'));
  mkdirSync(controlDir);

  // The machine's arguments go NUL-separated into a file that bash reads into an array: no quoting, and
  // `exec` makes the machine the process ipmi_sim signals on power off.
  const argsFile = join(dir, 'machine.args');
  writeFileSync(argsFile, (options.machine ?? ['sleep', '600']).map((a) => `${a}\0`).join(''));
  const startScript = join(dir, 'start-machine.sh');
  writeFileSync(startScript, `#!/bin/bash\necho $$ > ${pidFile}\nmapfile -d '' -t ARGS < ${argsFile}\nexec "\${ARGS[@]}"\n`);
  chmodSync(startScript, 0o755);
  const controlScript = join(dir, 'chassis-control.sh');
  writeFileSync(
    controlScript,
    [
      '#!/bin/sh',
      `D=${controlDir}`,
      'echo "$*" >> $D/log',
      'case "$1 $2" in',
      '  "get power") if [ -f $D/power ]; then echo "power:$(cat $D/power)"; else echo "power:0"; fi ;;',
      '  "set power") echo "$3" > $D/power ;;',
      '  "get boot") if [ -f $D/boot ]; then echo "boot:$(cat $D/boot)"; else echo "boot:default"; fi ;;',
      '  "set boot") echo "$3" > $D/boot ;;',
      'esac',
      '',
    ].join('\n'),
  );
  chmodSync(controlScript, 0o755);

  const conf = [
    'name "metal-test-bmc"',
    'set_working_mc 0x20',
    '  startlan 1',
    `    addr 127.0.0.1 ${port}`,
    '    priv_limit admin',
    ...['callback', 'user', 'operator', 'admin'].map((p) => `    allowed_auths_${p} none md2 md5 straight`),
    '    guid a123456789abcdefa123456789abcdef',
    '  endlan',
    `  serial 15 127.0.0.1 ${serialPort} codec VM`,
    options.chassisControl ? `  chassis_control "${controlScript}"` : `  startcmd "${startScript}"`,
    '  startnow false',
    '  poweroff_wait 0',
    '  kill_wait 0',
    `  user 2 true "${username}" "${options.password}" admin 10 none md2 md5 straight`,
    '',
  ].join('\n');
  writeFileSync(join(dir, 'lan.conf'), conf, { mode: 0o600 });
  writeFileSync(join(dir, 'bmc.emu'), EMU);

  const child: ChildProcess = spawn('ipmi_sim', ['-c', join(dir, 'lan.conf'), '-f', join(dir, 'bmc.emu'), '-s', join(dir, 'state'), '-n'], {
    stdio: ['ignore', 'ignore', 'pipe'],
    cwd: dir,
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  await waitForUdpListener(port, child, () => stderr);

  const machinePid = (): number | undefined => {
    if (!existsSync(pidFile)) return undefined;
    const pid = Number(readFileSync(pidFile, 'utf8').trim());
    return pid > 0 && existsSync(`/proc/${pid}`) && !isZombie(pid) ? pid : undefined;
  };
  return {
    host: '127.0.0.1',
    port,
    username,
    machinePid,
    controlLog: () => (existsSync(join(controlDir, 'log')) ? readFileSync(join(controlDir, 'log'), 'utf8').split('\n').filter(Boolean) : []),
    controlPowerOn: () => existsSync(join(controlDir, 'power')) && readFileSync(join(controlDir, 'power'), 'utf8').trim() === '1',
    async stop() {
      const pid = machinePid();
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 3000))]);
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }
      if (pid !== undefined) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // already gone
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function isZombie(pid: number): boolean {
  try {
    return /^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return true;
  }
}

/** Waits until ipmi_sim has bound its UDP port (seen in /proc/net/udp), or fails naming its output. */
async function waitForUdpListener(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`ipmi-simulator: ipmi_sim exited ${child.exitCode}: ${output().slice(0, 500)}`);
    if (readFileSync('/proc/net/udp', 'utf8').includes(`0100007F:${hex}`)) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error(`ipmi-simulator: ipmi_sim did not listen on UDP ${port} within 5 s: ${output().slice(0, 500)}`);
}
