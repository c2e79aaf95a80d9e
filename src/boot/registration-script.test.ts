import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BOOTING_NIC_MAC, renderRegistrationScript } from './ipxe-script.ts';

const base = {
  bootUrl: 'http://10.0.0.5:8081',
  selfUrl: 'http://10.0.0.5:8081/boot.ipxe',
  tag: undefined,
  manifest: { init: '/nix/store/aaaa-registration/init', kernelParams: ['console=ttyS1,115200'] },
  enrollToken: undefined,
};

const kernelLine = (script: string) => script.split('\n').find((line) => line.startsWith('kernel '));

test('registration kernel line: metal.after from METAL_AFTER_ENROLL, then the booting NIC', () => {
  for (const afterEnroll of ['reboot', 'poweroff', 'hold'] as const) {
    const line = kernelLine(renderRegistrationScript({ ...base, bootMac: '52:54:00:12:34:56', afterEnroll }));
    assert.equal(
      line,
      `kernel http://10.0.0.5:8081/images/registration/bzImage initrd=initrd init=/nix/store/aaaa-registration/init console=ttyS1,115200 enrollment_url=http://10.0.0.5:8081/api/v1/enroll metal.after=${afterEnroll} metal.boot_mac=52:54:00:12:34:56 || goto failed`,
    );
  }
});

test('registration kernel line: without ?mac=, iPXE fills in the MAC of the NIC it boots through', () => {
  const line = kernelLine(renderRegistrationScript({ ...base, bootMac: undefined, afterEnroll: 'reboot' }));
  assert.equal(BOOTING_NIC_MAC, '${netX/mac}');
  assert.match(line ?? '', / metal\.after=reboot metal\.boot_mac=\$\{netX\/mac\} \|\| goto failed$/);
});

test('registration kernel line: a boot MAC that is not a plain word is refused, never written', () => {
  assert.throws(() => renderRegistrationScript({ ...base, bootMac: '52:54 && shell', afterEnroll: 'reboot' }), /refusing to write an unsafe word/);
});
