import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { ApiClient, ApiError, CliError, NOT_LOGGED_IN, normaliseBaseUrl, segment } from './api-client.ts';

describe('the API client', () => {
  let server: Server;
  let url = '';
  const seen: Array<{ method: string; url: string; auth?: string; body: string }> = [];
  const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
    '/api/v1/machines/ABC': (_q, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"service_tag":"ABC"}'),
    '/api/v1/machines/NOPE': (_q, res) => res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"not_found","message":"machine NOPE not found"}}'),
    '/api/v1/secret': (_q, res) => res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"unauthorized","message":"token expired"}}'),
    '/api/v1/html': (_q, res) => res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad Gateway</h1>'),
    '/api/v1/gone': (_q, res) => res.writeHead(204).end(),
    '/api/v1/slow': () => {},
  };
  before(async () => {
    server = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        seen.push({ method: req.method!, url: req.url!, body, ...(req.headers.authorization ? { auth: req.headers.authorization } : {}) });
        (routes[req.url!.split('?')[0]!] ?? ((_q, r) => r.writeHead(404).end()))(req, res);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  test('sends the bearer token, query and JSON body, and parses the answer', async () => {
    const client = new ApiClient({ url, token: 'mt_abc' });
    assert.equal(client.url, url.replace(/\/$/, ''));
    assert.deepEqual(await client.get('/api/v1/machines/ABC', { query: { limit: 5, status: undefined } }), { service_tag: 'ABC' });
    assert.deepEqual(seen.at(-1), { method: 'GET', url: '/api/v1/machines/ABC?limit=5', auth: 'Bearer mt_abc', body: '' });
    await client.delete('/api/v1/gone');
    await client.post('/api/v1/gone', { name: 'x' });
    assert.deepEqual(seen.at(-1), { method: 'POST', url: '/api/v1/gone', auth: 'Bearer mt_abc', body: '{"name":"x"}' });
  });

  test('an API error carries the API’s code and message', async () => {
    const err = await new ApiClient({ url }).get('/api/v1/machines/NOPE').catch((e: unknown) => e);
    assert.ok(err instanceof ApiError);
    assert.equal(err.status, 404);
    assert.equal(err.code, 'not_found');
    assert.equal(err.message, 'machine NOPE not found');
  });

  test('401 says to log in', async () => {
    const err = await new ApiClient({ url, token: 'bad' }).get('/api/v1/secret').catch((e: unknown) => e);
    assert.ok(err instanceof ApiError);
    assert.equal(err.message, NOT_LOGGED_IN);
    assert.equal(err.apiMessage, 'token expired');
  });

  test('an answer that is not the API’s error body still gives a message', async () => {
    await assert.rejects(new ApiClient({ url }).get('/api/v1/html'), { name: 'ApiError', message: 'the server answered 502 Bad Gateway', code: 'http_502' });
  });

  test('a server that does not answer in time is a timeout naming the server', async () => {
    await assert.rejects(new ApiClient({ url, timeoutMs: 200 }).get('/api/v1/slow'), (err: Error) => err instanceof CliError && /no answer from http:\/\/127\.0\.0\.1:\d+ within 200 ms/.test(err.message));
  });

  test('a server that is not there is a clear error', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    await assert.rejects(new ApiClient({ url: `http://127.0.0.1:${port}` }).get('/x'), { message: `cannot reach http://127.0.0.1:${port}: ECONNREFUSED` });
  });

  test('user values cannot change the route, and base URLs are normalised', () => {
    assert.equal(segment('../users/1'), '..%2Fusers%2F1');
    assert.equal(segment('a?b#c'), 'a%3Fb%23c');
    assert.equal(normaliseBaseUrl('http://metal.example:8080/'), 'http://metal.example:8080');
    assert.equal(normaliseBaseUrl('https://metal.example/base/?x=1'), 'https://metal.example/base');
  });
});
