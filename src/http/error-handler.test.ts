import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import { installErrorHandling, toHttpError } from './error-handler.ts';

// Which driver errors mean "the database does not answer" is storage's to say (unavailable.test.ts,
// with the real drivers); here, what the one error mapping makes of one.
test('a database that does not answer is a 503 unavailable with Retry-After, not a 500', async () => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });
  const app = Fastify();
  installErrorHandling(app);
  app.get('/machines', async () => {
    throw refused;
  });
  const r = await app.inject({ method: 'GET', url: '/machines' });
  assert.equal(r.statusCode, 503);
  assert.equal(r.headers['retry-after'], '5');
  assert.deepEqual(r.json(), { error: { code: 'unavailable', message: 'the database does not answer; try again shortly' } });
  assert.deepEqual(toHttpError(new Error('syntax error at or near "selec"')), { status: 500, body: { error: { code: 'internal', message: 'internal error; see the server log' } } });
});
