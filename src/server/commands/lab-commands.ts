import type { Command } from 'commander';
import { configFromFlags } from '../../config/config-flags.ts';
import { LAB_BOOT_URL, parseLabMachine } from '../../registration/lab/lab-machine.ts';
import { runLabMachine } from '../../registration/lab/qemu-runner.ts';
import { buildRegistrationImage } from '../../registration/lab/registration-image.ts';
import { EfiSigner } from '../../images/secure-boot.ts';

interface ImageOptions {
  dataDir?: string;
  imagesDir?: string;
  agent?: string;
}

interface BootOptions {
  serial: string;
  uefi?: boolean;
  secureBoot?: boolean;
  mac?: string;
  uuid?: string;
  memory?: string;
  cpus?: string;
  diskSize?: string;
  bootPort?: string;
  manufacturer?: string;
  product?: string;
  timeout: string;
}

/** `metal lab image` and `metal lab boot`: a registration image and virtual machines for trying Metal without hardware. */
export function registerLabCommands(program: Command): void {
  const lab = program
    .command('lab')
    .description('a machine in a box: a registration image from Debian packages and QEMU machines that PXE-boot from the local boot server');

  lab
    .command('image')
    .description('build the registration image (cloud kernel, busybox, virtio drivers, the agent) into <images dir>/registration')
    .option('--data-dir <dir>', 'overrides METAL_DATA_DIR')
    .option('--images-dir <dir>', 'overrides METAL_IMAGES_DIR')
    .option('--agent <file>', 'the registration agent script (default: the project\'s)')
    .addHelpText('after', '\nExample:\n  metal lab image                  # writes ./data/images/registration/{bzImage,initrd,boot.json}')
    .action(async (opts: ImageOptions) => {
      const config = configFromFlags(opts);
      const signer = config.secureBoot ? EfiSigner.find(config.secureBoot, 'metal lab image') : undefined;
      const image = await buildRegistrationImage({ imagesDir: config.imagesDir, agentFile: opts.agent, signer });
      console.log(`lab: registration image for kernel ${image.kernelVersion} in ${image.dir}`);
      console.log(`  bzImage ${image.files.bzImage.size} bytes, initrd ${image.files.initrd.size} bytes`);
      if (signer) console.log(`  the kernel is signed for Secure Boot by ${signer.subject}`);
    });

  lab
    .command('boot')
    .description('boot a QEMU machine that PXE-boots from the boot server on 127.0.0.1, its serial console on this terminal')
    .requiredOption('--serial <tag>', 'DMI system serial (the service tag)')
    .option('--uefi', 'boot with OVMF (UEFI) instead of legacy BIOS')
    .option('--secure-boot', 'UEFI with Secure Boot enforced, trusting only Debian\'s snakeoil key (sign with it: docs/lab.md)')
    .option('--mac <mac>', 'NIC address (default: derived from the serial)')
    .option('--uuid <uuid>', 'SMBIOS system UUID')
    .option('--memory <MB>', 'memory in MB', '1024')
    .option('--cpus <N>', 'virtual CPUs', '2')
    .option('--disk-size <GB>', 'size of the virtual disk in GB', '2')
    .option('--boot-port <port>', 'port of the boot server on 127.0.0.1 (default: the port of METAL_BOOT_LISTEN)')
    .option('--manufacturer <text>', 'SMBIOS manufacturer', 'Metal Lab')
    .option('--product <text>', 'SMBIOS product name', 'Virtual Server')
    .option('--timeout <seconds>', 'stop the machine after this long', '600')
    .addHelpText(
      'after',
      `\nThe server must write ${LAB_BOOT_URL} into its boot scripts:\n  METAL_BOOT_URL=${LAB_BOOT_URL} npm start\n  metal lab boot --serial DEMO001\nCtrl-C stops the machine.`,
    )
    .action(async (opts: BootOptions) => {
      const config = configFromFlags({});
      const machine = parseLabMachine({
        serial: opts.serial,
        uefi: opts.uefi === true,
        secureBoot: opts.secureBoot === true,
        mac: opts.mac,
        uuid: opts.uuid,
        memoryMb: opts.memory,
        cpus: opts.cpus,
        diskGb: opts.diskSize,
        bootPort: opts.bootPort ?? config.bootListen.port,
        manufacturer: opts.manufacturer,
        product: opts.product,
      });
      const timeoutSeconds = Number(opts.timeout);
      if (!Number.isSafeInteger(timeoutSeconds) || timeoutSeconds < 1) throw new Error(`lab: --timeout ${JSON.stringify(opts.timeout)} is invalid: expected whole seconds`);
      await warnUnlessLabBootServer(machine.bootPort);
      console.error(`lab: booting ${machine.serial} (${machine.secureBoot ? 'UEFI Secure Boot' : machine.uefi ? 'UEFI' : 'BIOS'}, ${machine.cpus} CPUs, ${machine.memoryMb} MB, MAC ${machine.mac}); Ctrl-C stops it`);
      const started = Date.now();
      // Ctrl-C reaches QEMU too (same terminal); this process stays to clean up the VM's files.
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      process.on('SIGINT', onSignal).on('SIGTERM', onSignal);
      const result = await runLabMachine(machine, { console: 'inherit', timeoutMs: timeoutSeconds * 1000, signal: stop.signal }).finally(() => {
        process.off('SIGINT', onSignal).off('SIGTERM', onSignal);
      });
      const seconds = ((Date.now() - started) / 1000).toFixed(1);
      if (stop.signal.aborted) {
        console.error(`lab: ${machine.serial} stopped after ${seconds} s`);
        process.exitCode = 130;
      } else if (result.timedOut) {
        console.error(`lab: ${machine.serial} was stopped after the ${timeoutSeconds} s timeout`);
        process.exitCode = 1;
      } else if (result.exitCode !== 0) {
        console.error(`lab: qemu exited with ${result.exitCode ?? result.signal} after ${seconds} s${result.stderr ? `: ${result.stderr.trim()}` : ''}`);
        process.exitCode = 1;
      } else {
        console.error(`lab: ${machine.serial} powered off after ${seconds} s`);
      }
    });
}

/** Asks the local boot server for its generic script and warns when it does not point machines at the lab address. */
async function warnUnlessLabBootServer(port: number): Promise<void> {
  const url = `http://127.0.0.1:${port}/boot.ipxe`;
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(3000) });
    const script = await response.text();
    if (response.ok && !script.includes(`${LAB_BOOT_URL}/`)) {
      console.error(`lab: warning: the boot server on port ${port} does not use ${LAB_BOOT_URL}; restart it with METAL_BOOT_URL=${LAB_BOOT_URL}`);
    }
  } catch (err) {
    console.error(`lab: warning: no boot server answers on 127.0.0.1:${port} (${(err as Error).message}); start one with METAL_BOOT_URL=${LAB_BOOT_URL} npm start`);
  }
}
