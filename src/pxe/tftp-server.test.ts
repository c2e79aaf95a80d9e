import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createLogger } from '../core/logger.ts';
import { encodeAck, encodeReadRequest, parseTftpPacket, TftpErrorCode, TftpOpcode } from './tftp-packet.ts';
import { resolveTftpPath, startTftpServer, type TftpServer } from './tftp-server.ts';
import { atftpGet } from './testing/atftp-client.ts';
import { curlTftpGet } from './testing/curl-tftp.ts';
import { rawTftpDownload } from './testing/tftp-test-client.ts';
import { toolSkipReason } from './testing/tool-requirements.ts';
import { UdpProbe } from './testing/udp-probe.ts';
import { pollUntil } from '../../test/support/poll.ts';

const IPXE_DIR = '/usr/lib/ipxe';
const IPXE_FILES = ['undionly.kpxe', 'snponly.efi'];
const logger = createLogger(process.env.METAL_TEST_LOG_LEVEL ?? 'silent');

describe('resolveTftpPath', () => {
  const cases: Array<[string, string, string | undefined]> = [
    ['a plain name is served from the root', 'undionly.kpxe', '/srv/undionly.kpxe'],
    ['a subdirectory is allowed', 'efi/snponly.efi', '/srv/efi/snponly.efi'],
    ['an absolute path is refused', '/etc/passwd', undefined],
    ['a leading .. is refused', '../etc/passwd', undefined],
    ['a .. inside is refused', 'efi/../../etc/passwd', undefined],
    ['a lone dot segment is refused', './undionly.kpxe', undefined],
    ['a backslash is refused', '..\\etc\\passwd', undefined],
    ['a hidden name is refused', '.ssh', undefined],
    ['an empty segment is refused', 'efi//snponly.efi', undefined],
    ['a trailing slash is refused', 'efi/', undefined],
    ['iPXE variables are not file names', '${serial}.ipxe', undefined],
  ];
  for (const [rule, name, expected] of cases) {
    test(rule, () => {
      const r = resolveTftpPath('/srv', name);
      if (expected === undefined) assert.ok('refused' in r, JSON.stringify(r));
      else assert.deepEqual(r, { path: expected });
    });
  }
});

describe('TFTP server', () => {
  let root: string;
  let server: TftpServer;
  const files = new Map<string, Buffer>();

  before(async () => {
    root = mkdtempSync(join(tmpdir(), 'metal-tftp-'));
    for (const f of IPXE_FILES) {
      if (existsSync(join(IPXE_DIR, f))) copyFileSync(join(IPXE_DIR, f), join(root, f));
      else writeFileSync(join(root, f), randomBytes(100_000)); // the ipxe package is checked by the client tests
      files.set(f, readFileSync(join(root, f)));
    }
    // Edge sizes: empty, exactly one block, exactly several 1468-byte blocks.
    for (const [name, size] of [['empty.bin', 0], ['one-block.bin', 512], ['blocks-1468.bin', 1468 * 3]] as const) {
      const data = randomBytes(size);
      writeFileSync(join(root, name), data);
      files.set(name, data);
    }
    mkdirSync(join(root, 'efi'));
    writeFileSync(join(root, 'efi', 'nested.efi'), 'nested');
    mkdirSync(join(root, 'adir'));
    server = await startTftpServer({ root, listen: { host: '127.0.0.1', port: 0 }, logger, retransmitMs: 200, maxAttempts: 4, maxTransfers: 32 });
  });
  after(async () => {
    await server?.close();
    rmSync(root, { recursive: true, force: true });
  });

  describe('with real clients', () => {
    const skip = toolSkipReason({ curl: 'curl', atftp: 'atftp' });
    const ipxeSkip = IPXE_FILES.every((f) => existsSync(join(IPXE_DIR, f))) ? undefined : process.env.CI === 'true' ? undefined : 'no /usr/lib/ipxe (Debian package ipxe)';
    if (ipxeSkip) console.warn(`\n*** SKIPPING real-binary TFTP tests: ${ipxeSkip} ***\n`);
    if (process.env.CI === 'true') assert.ok(existsSync(join(IPXE_DIR, 'undionly.kpxe')), 'required in CI: /usr/lib/ipxe/undionly.kpxe (Debian package ipxe)');

    for (const file of IPXE_FILES) {
      for (const blksize of [512, 1468]) {
        test(`curl downloads ${file} byte for byte with blksize ${blksize}`, { skip: skip ?? ipxeSkip, timeout: 90_000 }, async (t) => {
          const out = join(mkdtempSync(join(tmpdir(), 'metal-tftp-out-')), file);
          t.after(() => rmSync(join(out, '..'), { recursive: true, force: true }));
          const r = await curlTftpGet(`tftp://127.0.0.1:${server.address.port}/${file}`, out, { blksize });
          assert.equal(r.code, 0, r.stderr);
          assert.ok(readFileSync(out).equals(files.get(file)!), `${file} differs`);
        });
        test(`atftp downloads ${file} byte for byte with blksize ${blksize} and is told its tsize`, { skip: skip ?? ipxeSkip, timeout: 90_000 }, async (t) => {
          const out = join(mkdtempSync(join(tmpdir(), 'metal-tftp-out-')), file);
          t.after(() => rmSync(join(out, '..'), { recursive: true, force: true }));
          const r = await atftpGet('127.0.0.1', server.address.port, file, out, { blksize, tsize: true });
          assert.equal(r.code, 0, r.stdout + r.stderr);
          const trace = r.stdout + r.stderr;
          assert.match(trace, new RegExp(`OACK <[^>]*blksize: ${blksize}\\b`), trace.slice(0, 2000));
          assert.match(trace, new RegExp(`OACK <[^>]*tsize: ${files.get(file)!.length}\\b`), trace.slice(0, 2000));
          assert.ok(readFileSync(out).equals(files.get(file)!), `${file} differs`);
        });
      }
    }

    test('many clients at once: 24 curl downloads in parallel, each byte for byte', { skip: skip ?? ipxeSkip, timeout: 120_000 }, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'metal-tftp-out-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      const runs = Array.from({ length: 24 }, (_, i) => {
        const file = IPXE_FILES[i % IPXE_FILES.length]!;
        const out = join(dir, `${i}-${file}`);
        return curlTftpGet(`tftp://127.0.0.1:${server.address.port}/${file}`, out, { blksize: i % 2 ? 1468 : 512 }).then((r) => ({ r, out, file }));
      });
      for (const { r, out, file } of await Promise.all(runs)) {
        assert.equal(r.code, 0, r.stderr);
        assert.ok(readFileSync(out).equals(files.get(file)!), `${out} differs`);
      }
      await transfersEnded(server, 10_000);
    });

    test('curl cannot climb out with ../ or an absolute path', { skip, timeout: 30_000 }, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'metal-tftp-out-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      for (const path of ['../../../../etc/passwd', '%2Fetc%2Fpasswd', '..%2F..%2Fetc%2Fhostname']) {
        const out = join(dir, 'out');
        const r = await runCurlPathAsIs(`tftp://127.0.0.1:${server.address.port}/${path}`, out);
        assert.notEqual(r.code, 0, `${path} must be refused`);
        assert.ok(!existsSync(out) || readFileSync(out).length === 0, `${path}: nothing written`);
      }
    });

    test('atftp is refused ../ and absolute paths with an access violation', { skip, timeout: 30_000 }, async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'metal-tftp-out-'));
      t.after(() => rmSync(dir, { recursive: true, force: true }));
      for (const path of ['../etc/passwd', '/etc/passwd', 'efi/../../etc/passwd']) {
        const r = await atftpGet('127.0.0.1', server.address.port, path, join(dir, 'out'));
        assert.notEqual(r.code, 0, `${path} must be refused`);
        assert.match(r.stdout + r.stderr, /ERROR <2>|Access violation|not served/i, r.stdout + r.stderr);
      }
    });
  });

  describe('protocol', () => {
    test('answers tsize with the file size and grants blksize in the OACK', async () => {
      const d = await rawTftpDownload(server.address.port, 'blocks-1468.bin', { requestOptions: { tsize: '0', blksize: '1468' } });
      assert.equal(d.oack?.get('tsize'), String(1468 * 3));
      assert.equal(d.oack?.get('blksize'), '1468');
      // A file of whole blocks ends with an empty block.
      assert.deepEqual(d.blocksReceived, [1, 2, 3, 4]);
      assert.ok(d.data.equals(files.get('blocks-1468.bin')!));
    });

    test('without options the transfer starts at block 1 with 512-byte blocks', async () => {
      const d = await rawTftpDownload(server.address.port, 'one-block.bin');
      assert.equal(d.oack, undefined);
      assert.deepEqual(d.blocksReceived, [1, 2]);
      assert.ok(d.data.equals(files.get('one-block.bin')!));
    });

    test('an empty file is one empty block', async () => {
      const d = await rawTftpDownload(server.address.port, 'empty.bin', { requestOptions: { tsize: '0' } });
      assert.equal(d.oack?.get('tsize'), '0');
      assert.equal(d.data.length, 0);
    });

    test('firmware that asks for tsize and then aborts with an error can ask again from the same port', { timeout: 20_000 }, async () => {
      const probe = await UdpProbe.open();
      try {
        await probe.send(encodeReadRequest('snponly.efi', 'octet', { tsize: '0', blksize: '1468' }), server.address.port);
        const oack = await probe.receive(5000);
        assert.ok(oack);
        const p = parseTftpPacket(oack.msg);
        assert.equal(p.op, TftpOpcode.OACK);
        assert.equal((p as { options: Map<string, string> }).options.get('tsize'), String(files.get('snponly.efi')!.length));
        // As OVMF does: end this transfer with an error, then request the file for real.
        await probe.send(Buffer.from([0, TftpOpcode.ERROR, 0, TftpErrorCode.OPTION_REFUSED, 0]), oack.rinfo.port);
        await transfersEnded(server, 5000);
        await probe.send(encodeReadRequest('one-block.bin', 'octet'), server.address.port);
        const first = await probe.receive(5000);
        assert.ok(first);
        assert.equal(parseTftpPacket(first.msg).op, TftpOpcode.DATA);
        await probe.send(encodeAck(1), first.rinfo.port);
      } finally {
        await probe.close();
      }
    });

    test('a withheld ACK makes the server send the same block again', { timeout: 20_000 }, async () => {
      const d = await rawTftpDownload(server.address.port, 'snponly.efi', { requestOptions: { blksize: '1468' }, dropAckOf: 3 });
      assert.deepEqual(d.blocksReceived.slice(0, 4), [1, 2, 3, 3], 'block 3 came twice');
      assert.equal(d.blocksReceived.filter((b) => b === 3).length, 2);
      assert.ok(d.data.equals(files.get('snponly.efi')!));
    });

    test('windowsize (RFC 7440) sends several blocks per ACK', async () => {
      const d = await rawTftpDownload(server.address.port, 'snponly.efi', { requestOptions: { blksize: '1024', windowsize: '8' } });
      assert.equal(d.oack?.get('windowsize'), '8');
      assert.ok(d.data.equals(files.get('snponly.efi')!));
    });

    test('block numbers roll over past 65535', { timeout: 60_000 }, async () => {
      const data = randomBytes(8 * 65_540 + 3);
      writeFileSync(join(root, 'rollover.bin'), data);
      const d = await rawTftpDownload(server.address.port, 'rollover.bin', { requestOptions: { blksize: '8', windowsize: '16' } });
      assert.ok(d.data.equals(data));
      assert.ok(d.blocksReceived.includes(0), 'block 0 follows 65535');
    });

    test('a subdirectory file is served; a directory, a missing file and a write are refused', async () => {
      assert.equal((await rawTftpDownload(server.address.port, 'efi/nested.efi')).data.toString(), 'nested');
      await assert.rejects(rawTftpDownload(server.address.port, 'adir'), { tftpCode: TftpErrorCode.FILE_NOT_FOUND });
      await assert.rejects(rawTftpDownload(server.address.port, 'missing.efi'), { tftpCode: TftpErrorCode.FILE_NOT_FOUND });
      const probe = await UdpProbe.open();
      try {
        const wrq = encodeReadRequest('x', 'octet');
        wrq[1] = TftpOpcode.WRQ;
        await probe.send(wrq, server.address.port);
        const got = await probe.receive(5000);
        assert.ok(got);
        assert.deepEqual(parseTftpPacket(got.msg), { op: TftpOpcode.ERROR, code: TftpErrorCode.ACCESS_VIOLATION, message: 'this server is read-only' });
      } finally {
        await probe.close();
      }
    });

    test('netascii is refused with a clear error', async () => {
      const probe = await UdpProbe.open();
      try {
        await probe.send(encodeReadRequest('undionly.kpxe', 'netascii'), server.address.port);
        const got = await probe.receive(5000);
        const packet = parseTftpPacket(got!.msg);
        assert.equal(packet.op, TftpOpcode.ERROR);
        assert.match((packet as { message: string }).message, /octet/);
      } finally {
        await probe.close();
      }
    });

    test('a packet from another port gets "unknown transfer ID" and the transfer goes on', async () => {
      const client = await UdpProbe.open();
      const stranger = await UdpProbe.open();
      try {
        await client.send(encodeReadRequest('one-block.bin', 'octet'), server.address.port);
        const first = await client.receive(5000);
        assert.ok(first);
        await stranger.send(encodeAck(1), first.rinfo.port);
        const err = parseTftpPacket((await stranger.receive(5000))!.msg);
        assert.deepEqual(err, { op: TftpOpcode.ERROR, code: TftpErrorCode.UNKNOWN_TID, message: 'unknown transfer ID' });
        await client.send(encodeAck(1), first.rinfo.port);
        const second = parseTftpPacket((await client.receive(5000))!.msg);
        assert.equal(second.op, TftpOpcode.DATA);
        assert.equal((second as { block: number }).block, 2);
        await client.send(encodeAck(2), first.rinfo.port);
      } finally {
        await client.close();
        await stranger.close();
      }
    });

    test('a flood of requests and junk: transfers stay bounded, extra requests hear "busy", all state is released', { timeout: 60_000 }, async () => {
      const probes = await Promise.all(Array.from({ length: 48 }, () => UdpProbe.open()));
      try {
        // Junk first: truncated, oversized, unknown opcodes, overflowing options, random bytes.
        const junk = [
          Buffer.alloc(0),
          Buffer.from([0, 1]),
          Buffer.from([0, 9, 1, 2]),
          Buffer.alloc(3000, 1),
          encodeReadRequest('snponly.efi', 'octet', Object.fromEntries(Array.from({ length: 40 }, (_, i) => [`o${i}`, '1']))),
          ...Array.from({ length: 500 }, () => randomBytes(1 + Math.floor(Math.random() * 1500))),
        ];
        // In batches (a socket buffer holds a few hundred packets), each followed by a write request as a
        // marker: its "read-only" answer shows the server handled the batch and still answers.
        const marker = encodeReadRequest('marker', 'octet');
        marker[1] = TftpOpcode.WRQ;
        for (let at = 0; at < junk.length; at += 50) {
          for (const j of junk.slice(at, at + 50)) await probes[0]!.send(j, server.address.port);
          await probes[0]!.send(marker, server.address.port);
          for (;;) {
            const got = await probes[0]!.receive(5000);
            assert.ok(got, 'the marker is answered');
            const packet = parseTftpPacket(got.msg);
            if (packet.op === TftpOpcode.ERROR && packet.message === 'this server is read-only') break;
          }
        }
        // 48 clients that never acknowledge: at most maxTransfers (32) run; the rest are told busy.
        for (const p of probes) await p.send(encodeReadRequest('snponly.efi', 'octet'), server.address.port);
        let busy = 0;
        for (const p of probes) {
          const got = await p.receive(5000);
          assert.ok(got, 'every client hears something');
          const packet = parseTftpPacket(got.msg);
          if (packet.op === TftpOpcode.ERROR && packet.message === 'server busy, try again') busy++;
        }
        assert.ok(server.activeTransfers() <= 32, `at most 32 transfers (${server.activeTransfers()})`);
        assert.ok(busy >= 48 - 32, `${busy} told busy`);
        // Unacknowledged transfers are given up, and every one is released.
        await transfersEnded(server, 20_000);
        const d = await rawTftpDownload(server.address.port, 'one-block.bin');
        assert.ok(d.data.equals(files.get('one-block.bin')!), 'the server still serves');
      } finally {
        await Promise.all(probes.map((p) => p.close()));
      }
    });

    test('a client that never answers is given up after maxAttempts sends, then an error', { timeout: 20_000 }, async () => {
      const probe = await UdpProbe.open();
      try {
        await probe.send(encodeReadRequest('snponly.efi', 'octet'), server.address.port);
        const seen: number[] = [];
        for (;;) {
          const got = await probe.receive(5000);
          assert.ok(got, 'the server ends the transfer itself');
          const p = parseTftpPacket(got.msg);
          if (p.op === TftpOpcode.ERROR) {
            assert.equal(p.message, 'timed out');
            break;
          }
          assert.equal(p.op, TftpOpcode.DATA);
          seen.push((p as { block: number }).block);
        }
        assert.deepEqual(seen, [1, 1, 1, 1], 'block 1 sent maxAttempts times');
        await transfersEnded(server, 5000);
      } finally {
        await probe.close();
      }
    });
  });
});

async function runCurlPathAsIs(url: string, out: string) {
  const { runTool } = await import('./testing/run-tool.ts');
  return runTool('curl', ['--silent', '--path-as-is', '--max-time', '20', '--output', out, '--', url], { timeoutMs: 30_000 });
}

/** Waits until the server holds no transfer; rejects after `timeoutMs`. */
async function transfersEnded(server: TftpServer, timeoutMs: number): Promise<void> {
  await pollUntil('every transfer ended', () => server.activeTransfers() === 0, { timeoutMs, state: () => server.activeTransfers() });
}
