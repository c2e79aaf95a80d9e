import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { checkKernelLine, checkMemoryMb, checkVmArguments, serialPorts, type CheckVm } from './check-vm.ts';

const vm: CheckVm = {
  kernel: '/images/builds/12/bzImage',
  initrd: '/images/builds/12/initrd',
  manifest: { init: '/nix/store/abc-nixos-system-web-01/init', kernelParams: ['console=tty0', 'console=ttyS1,115200n8', 'loglevel=4'] },
  serviceTag: 'ABC123',
  buildId: 12,
  token: 'one-off_token',
  consoleLogs: ['/tmp/c/ttyS0.log', '/tmp/c/ttyS1.log'],
  forward: ['/usr/bin/node', '--no-warnings', '/app/guest-forward.mjs', '/tmp/c/report.sock'],
  kvm: false,
  memoryMb: 1024,
  cpus: 2,
};

describe('the boot-check VM', () => {
  it('gets the kernel line a boot script would give the image, aimed at the check', () => {
    assert.equal(
      checkKernelLine(vm),
      'init=/nix/store/abc-nixos-system-web-01/init console=tty0 console=ttyS1,115200n8 loglevel=4 metal.boot_url=http://10.0.2.100 metal.service_tag=ABC123 metal.build_id=12 metal.boot_token=one-off_token panic=-1',
    );
  });

  it('gives an image without a serial console one, so the log sees it', () => {
    assert.match(checkKernelLine({ ...vm, manifest: { init: '/init', kernelParams: ['console=tty0'] } }), / console=ttyS0,115200 panic=-1$/);
  });

  it('has a serial port for every ttyS the image names, up to ttyS3', () => {
    assert.equal(serialPorts(vm.manifest), 2);
    assert.equal(serialPorts({ init: '/init', kernelParams: [] }), 1);
    assert.equal(serialPorts({ init: '/init', kernelParams: ['console=ttyS3,115200'] }), 4);
    assert.equal(serialPorts({ init: '/init', kernelParams: ['console=ttyS9'] }), 1);
    assert.equal(serialPorts({ init: '/init', kernelParams: ['console=ttyS10', 'console=ttyS0'] }), 1);
  });

  it('sizes memory for an initrd unpacked into RAM', () => {
    assert.equal(checkMemoryMb(5 * 2 ** 20), 1024);
    assert.equal(checkMemoryMb(400 * 2 ** 20), 2048);
    assert.equal(checkMemoryMb(1000 * 2 ** 20), 3840);
  });

  it('confines the VM to a user network whose only way out is the check listener', () => {
    const args = checkVmArguments(vm);
    const netdev = args[args.indexOf('-netdev') + 1];
    assert.equal(netdev, 'user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:80-cmd:/usr/bin/node --no-warnings /app/guest-forward.mjs /tmp/c/report.sock');
    assert.deepEqual(args.filter((_, i) => args[i - 1] === '-serial'), ['file:/tmp/c/ttyS0.log', 'file:/tmp/c/ttyS1.log']);
    assert.equal(args[args.indexOf('-accel') + 1], 'tcg');
    assert.equal(checkVmArguments({ ...vm, kvm: true })[args.indexOf('-accel') + 1], 'kvm');
    assert.ok(args.includes('-no-reboot') && args.includes('-nodefaults'));
    assert.ok(!args.some((a) => a.startsWith('-drive') || a === '-hda'), 'no disk');
  });

  it('refuses paths and values a QEMU option or a kernel line cannot carry', () => {
    assert.throws(() => checkVmArguments({ ...vm, kernel: '/images/a,b/bzImage' }), /kernel path "\/images\/a,b\/bzImage" cannot be used on a QEMU command line/);
    assert.throws(() => checkVmArguments({ ...vm, consoleLogs: ['/tmp/c d/ttyS0.log'] }), /console log path/);
    assert.throws(() => checkVmArguments({ ...vm, forward: ['/usr/bin/node', '/a,file=/etc/passwd'] }), /forwarder path/);
    assert.throws(() => checkVmArguments({ ...vm, token: 'a b' }), /kernel line cannot carry/);
    assert.throws(() => checkVmArguments({ ...vm, serviceTag: 'x;reboot' }), /kernel line cannot carry/);
    assert.throws(() => checkVmArguments({ ...vm, consoleLogs: [] }), /1 to 4 console logs/);
  });
});
