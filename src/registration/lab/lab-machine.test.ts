import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { LabMachineError, macForSerial, parseLabMachine, type LabMachineInput } from './lab-machine.ts';

describe('parseLabMachine', () => {
  test('fills in defaults: BIOS, 1024 MB, 2 CPUs, 2 GB, boot port 8081, a MAC derived from the serial', () => {
    assert.deepEqual(parseLabMachine({ serial: 'DEMO001' }), {
      serial: 'DEMO001',
      uefi: false,
      secureBoot: false,
      mac: macForSerial('DEMO001'),
      memoryMb: 1024,
      cpus: 2,
      diskGb: 2,
      bootPort: 8081,
      manufacturer: 'Metal Lab',
      product: 'Virtual Server',
      uuid: undefined,
    });
  });

  test('Secure Boot is a UEFI machine', () => {
    const m = parseLabMachine({ serial: 'SB1', secureBoot: true });
    assert.deepEqual([m.uefi, m.secureBoot], [true, true]);
  });

  test('takes numbers given as strings (from the command line) and lower-cases MAC and UUID', () => {
    const m = parseLabMachine({ serial: 'A1', mac: '52:54:00:AB:CD:EF', uuid: 'ABCDEF01-2345-6789-ABCD-EF0123456789', memoryMb: '512', cpus: '1', diskGb: '3', bootPort: '40000' });
    assert.equal(m.mac, '52:54:00:ab:cd:ef');
    assert.equal(m.uuid, 'abcdef01-2345-6789-abcd-ef0123456789');
    assert.deepEqual([m.memoryMb, m.cpus, m.diskGb, m.bootPort], [512, 1, 3, 40000]);
  });

  test('the derived MAC is stable, unicast and locally administered (52:54:00 prefix)', () => {
    assert.equal(macForSerial('DEMO001'), macForSerial('DEMO001'));
    assert.notEqual(macForSerial('DEMO001'), macForSerial('DEMO002'));
    assert.match(macForSerial('DEMO001'), /^52:54:00(:[0-9a-f]{2}){3}$/);
  });

  const rejected: Array<[string, LabMachineInput, RegExp]> = [
    ['a serial with a space', { serial: 'A B' }, /--serial "A B" is invalid/],
    ['a serial with shell characters', { serial: 'x;reboot' }, /--serial/],
    ['a serial with a comma (QEMU option separator)', { serial: 'a,b' }, /--serial/],
    ['a malformed MAC', { serial: 'A1', mac: '52:54:00:12:34' }, /--mac "52:54:00:12:34" is invalid/],
    ['a multicast MAC', { serial: 'A1', mac: '01:00:5e:00:00:01' }, /multicast/],
    ['a malformed UUID', { serial: 'A1', uuid: 'not-a-uuid' }, /--uuid/],
    ['too little memory', { serial: 'A1', memoryMb: 64 }, /--memory 64 is invalid: expected a whole number from 128/],
    ['a fractional CPU count', { serial: 'A1', cpus: '1.5' }, /--cpus "1.5" is invalid/],
    ['zero CPUs', { serial: 'A1', cpus: 0 }, /--cpus 0/],
    ['a port out of range', { serial: 'A1', bootPort: 70000 }, /--boot-port 70000/],
    ['a disk of 0 GB', { serial: 'A1', diskGb: '0' }, /--disk-size "0"/],
    ['a manufacturer with a quote', { serial: 'A1', manufacturer: 'Dell"' }, /--manufacturer/],
    ['a product with a newline', { serial: 'A1', product: 'R740\nx' }, /--product/],
  ];
  for (const [rule, input, message] of rejected) {
    test(`rejects ${rule}`, () => {
      assert.throws(() => parseLabMachine(input), (err: unknown) => err instanceof LabMachineError && message.test(err.message));
    });
  }
});
