import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import Fastify from 'fastify';
import { createLogger } from '../core/logger.ts';
import { registerHealthRoutes } from './health-routes.ts';
import { Readiness } from './readiness.ts';

describe('health routes', () => {
  const build = (ping: () => Promise<void>, readiness?: Readiness) => {
    const app = Fastify();
    registerHealthRoutes(app, { ping, logger: createLogger('silent'), ...(readiness ? { readiness } : {}) });
    return app;
  };
  const readyz = async (app: ReturnType<typeof build>) => {
    const r = await app.inject({ method: 'GET', url: '/readyz' });
    return { status: r.statusCode, body: r.json() as unknown };
  };

  test('/readyz names the parts still starting, then asks the database, then says stopping', async () => {
    let pings = 0;
    const readiness = new Readiness();
    const app = build(async () => void pings++, readiness);
    readiness.wait('API listener', 'boot listener');
    readiness.up('API listener');
    assert.deepEqual(await readyz(app), { status: 503, body: { status: 'unavailable', reason: 'starting: waiting for the boot listener' } });
    assert.equal(pings, 0, 'the database is not asked while the process starts');
    readiness.up('boot listener');
    assert.deepEqual(await readyz(app), { status: 200, body: { status: 'ready' } });
    assert.equal(pings, 1);
    readiness.stop();
    assert.deepEqual(await readyz(app), { status: 503, body: { status: 'unavailable', reason: 'stopping' } });
    const live = await app.inject({ method: 'GET', url: '/healthz' });
    assert.equal(live.statusCode, 200, 'alive while not ready');
  });

  test('/readyz says so when the database does not answer', async () => {
    const app = build(async () => {
      throw new Error('connection refused');
    });
    assert.deepEqual(await readyz(app), { status: 503, body: { status: 'unavailable', reason: 'database unreachable' } });
  });
});
