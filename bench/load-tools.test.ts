import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { cleanupAll } from './cleanup.ts';
import { renderNginxConfig, startNginx } from './nginx-process.ts';
import { isOnPath } from './prerequisites.ts';
import { parseWrkOutput, pathGenerator, runWrk } from './wrk.ts';

/** True when `command` exists; otherwise warns loudly, or throws in CI where it must be installed. */
function requireTool(command: string): boolean {
  if (isOnPath(command)) return true;
  if (process.env.CI === 'true') throw new Error(`${command} is required in CI`);
  console.warn(`\n*** SKIPPING bench ${command} tests: ${command} is not installed ***\n`);
  return false;
}

const work = mkdtempSync(join(tmpdir(), 'metal-bench-test-'));
after(async () => {
  await cleanupAll();
  rmSync(work, { recursive: true, force: true });
});

describe('renderNginxConfig', () => {
  it('keeps everything in the prefix and listens on loopback with one worker', () => {
    const conf = renderNginxConfig({ prefix: '/tmp/p', root: '/tmp/r', port: 8088, sendfile: true });
    assert.match(conf, /^worker_processes 1;$/m);
    assert.match(conf, /^daemon off;$/m);
    assert.match(conf, /^pid \/tmp\/p\/nginx\.pid;$/m);
    assert.match(conf, /listen 127\.0\.0\.1:8088;/);
    assert.match(conf, /sendfile on;/);
    assert.doesNotMatch(conf, /^user /m);
    assert.match(renderNginxConfig({ prefix: '/tmp/p', root: '/tmp/r', port: 8088, sendfile: true, workers: 'auto' }), /^worker_processes auto;$/m);
  });

  it('refuses paths and users that could change the configuration', () => {
    assert.throws(() => renderNginxConfig({ prefix: '/tmp/p;\nuser root', root: '/tmp/r', port: 1, sendfile: false }), /not a plain absolute path/);
    assert.throws(() => renderNginxConfig({ prefix: 'relative', root: '/tmp/r', port: 1, sendfile: false }), /not a plain absolute path/);
    assert.throws(() => renderNginxConfig({ prefix: '/tmp/p', root: '/tmp/r', port: 70000, sendfile: false }), /port 70000 is invalid/);
    assert.throws(() => renderNginxConfig({ prefix: '/tmp/p', root: '/tmp/r', port: 1, sendfile: false, user: 'a b' }), /user "a b" is invalid/);
    assert.throws(() => renderNginxConfig({ prefix: '/tmp/p', root: '/tmp/r', port: 1, sendfile: false, workers: 0 }), /workers 0 is invalid/);
  });
});

describe('pathGenerator', () => {
  it('refuses characters that would break out of the Lua string', () => {
    assert.throws(() => pathGenerator({ before: "/x'..os.exit()..'", prefix: '', width: 1, count: 1, after: '' }), /not safe/);
    assert.throws(() => pathGenerator({ before: '/x', prefix: '', width: 1, count: 0, after: '' }), /bad path generator range/);
  });
});

describe('parseWrkOutput', () => {
  it('reads the result line among wrk’s own output', () => {
    const out = 'Running 1s test @ http://127.0.0.1:1\n  1 threads and 2 connections\nBENCH_RESULT {"requests":200,"duration_us":2000000,"bytes":4000000,"p50_us":1500,"p90_us":2500,"p99_us":9000,"max_us":12000,"connect":0,"read":1,"write":0,"status":3,"timeout":0}\n';
    const r = parseWrkOutput(out);
    assert.equal(r.requestsPerSecond, 100);
    assert.equal(r.megabytesPerSecond, 2);
    assert.deepEqual([r.p50Ms, r.p99Ms, r.maxMs], [1.5, 9, 12]);
    assert.deepEqual(r.errors, { connect: 0, read: 1, write: 0, timeout: 0, status: 3 });
  });

  it('fails clearly when wrk printed no result', () => {
    assert.throws(() => parseWrkOutput('unable to connect'), /wrk printed no result line/);
  });
});

describe('runWrk with a path generator', () => {
  let server: Server;
  const seen: string[] = [];
  before(async () => {
    server = createServer((req, res) => {
      seen.push(req.url ?? '');
      res.end(req.url === '/nixos/machines/T003.ipxe' ? 'x' : 'ok');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  });
  after(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('asks only for generated paths and reports what it measured', async (t) => {
    if (!requireTool('wrk')) return t.skip('wrk missing');
    const address = server.address() as { port: number };
    const lua = pathGenerator({ before: '/nixos/machines/', prefix: 'T', width: 3, count: 5, after: '.ipxe' });
    const r = await runWrk({ url: `http://127.0.0.1:${address.port}`, connections: 4, threads: 1, durationSeconds: 1, luaRequest: lua, workDir: work });
    assert.ok(r.requests > 0 && r.requests <= seen.length, `${r.requests} requests, server saw ${seen.length}`);
    assert.deepEqual(r.errors, { connect: 0, read: 0, write: 0, timeout: 0, status: 0 });
    assert.deepEqual([...new Set(seen)].sort(), ['001', '002', '003', '004', '005'].map((n) => `/nixos/machines/T${n}.ipxe`));
  });

  it('paced: each connection waits the pause before every request; phased, its first wait is random', { timeout: 180_000 }, async (t) => {
    if (!requireTool('wrk')) return t.skip('wrk missing');
    const address = server.address() as { port: number };
    const arrivalsOf = async (pacing: 'lockstep' | 'phased'): Promise<number[][]> => {
      const arrivals = new Map<number, number[]>();
      const record = (req: IncomingMessage) => {
        const port = req.socket.remotePort ?? 0;
        arrivals.set(port, [...(arrivals.get(port) ?? []), performance.now()]);
      };
      server.on('request', record);
      try {
        await runWrk({ url: `http://127.0.0.1:${address.port}/`, connections: 10, threads: 1, durationSeconds: 2, pauseMs: 300, pacing, workDir: work });
      } finally {
        server.off('request', record);
      }
      return [...arrivals.values()];
    };
    const lockstep = await arrivalsOf('lockstep');
    const gaps = lockstep.filter((a) => a.length >= 2).map((a) => a[1]! - a[0]!);
    // An arrival is stamped when this process's event loop gets to it: ten connections arrive in one
    // burst, and a stamp late in one burst and early in the next shortens a gap (291 ms was seen on a
    // busy machine). Without the pause a gap would be a millisecond or two; 50 ms of slack tells the two apart.
    assert.ok(gaps.length > 0 && gaps.every((gap) => gap >= 250), `lockstep: a whole pause between one connection's requests: ${gaps.map(Math.round)}`);
    // Phased: the first requests are spread over the pause (wrk waits before a connection's first request too).
    const firsts = (await arrivalsOf('phased')).map((a) => a[0]!);
    assert.ok(firsts.length === 10 && Math.max(...firsts) - Math.min(...firsts) > 100, `phased: first requests spread over the pause: ${firsts.map((f) => Math.round(f - Math.min(...firsts)))}`);
  });

  it('refuses to send load anywhere but loopback', async () => {
    await assert.rejects(runWrk({ url: 'http://10.0.0.1/', connections: 1, threads: 1, durationSeconds: 1, workDir: work }), /loopback only/);
  });
});

describe('startNginx', () => {
  it('serves files from the root, lists no directory, and is gone after stop', async (t) => {
    if (!requireTool('nginx')) return t.skip('nginx missing');
    const root = mkdtempSync(join(work, 'root-'));
    writeFileSync(join(root, 'script.ipxe'), '#!ipxe\n');
    const prefix = join(work, 'nginx');
    const nginx = await startNginx({ prefix, root, sendfile: true });
    assert.match(nginx.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const file = await fetch(`${nginx.url}/script.ipxe`);
    assert.equal(file.status, 200);
    assert.equal(await file.text(), '#!ipxe\n');
    assert.equal((await fetch(`${nginx.url}/`)).status, 403);
    await nginx.stop();
    assert.equal(existsSync(`/proc/${nginx.pid}`), false);
    await assert.rejects(fetch(`${nginx.url}/script.ipxe`));
  });
});
