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

test('a body with a field it does not take names the field (cut short), at its place in the body', async () => {
  const app = Fastify({ ajv: { customOptions: { removeAdditional: false } } });
  installErrorHandling(app);
  const schema = {
    body: {
      type: 'object',
      additionalProperties: false,
      properties: { service_tag: { type: 'string' }, hardware: { type: 'object', additionalProperties: false, properties: { model: { type: 'string' } } } },
    },
  };
  app.post('/enroll', { schema }, async () => ({ ok: true }));
  const refused = async (payload: unknown) => (await app.inject({ method: 'POST', url: '/enroll', payload: payload as Record<string, unknown> })).json();
  assert.deepEqual(await refused({ service_tag: 'A', mac: 'x' }), { error: { code: 'invalid_input', message: 'invalid request: body has a field it does not take: "mac"' } });
  assert.deepEqual(await refused({ hardware: { model: 'x', rack: 'r1' } }), { error: { code: 'invalid_input', message: 'invalid request: body.hardware has a field it does not take: "rack"' } });
  const long = (await refused({ ['x'.repeat(500)]: 1 })) as { error: { message: string } };
  assert.equal(long.error.message, `invalid request: body has a field it does not take: "${'x'.repeat(64)}…"`);
  assert.deepEqual(await refused({ hardware: 'x' }), { error: { code: 'invalid_input', message: 'invalid request: body/hardware must be object' } }, 'other refusals keep ajv\'s message');
});
