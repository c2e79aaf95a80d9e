import assert from 'node:assert/strict';
import { test } from 'node:test';
import { UdpProbe } from './udp-probe.ts';

test('probes opened on a free port each get their own port', { timeout: 30_000 }, async () => {
  // With SO_REUSEADDR on every socket, Linux hands out a port already taken about once in twenty
  // sockets at this count (measured: 145 of 3,000), and a server then sees two probes as one client.
  const probes = await Promise.all(Array.from({ length: 600 }, () => UdpProbe.open()));
  try {
    const ports = new Set(probes.map((p) => p.port));
    assert.equal(ports.size, probes.length, `${probes.length - ports.size} probes share a port`);
  } finally {
    await Promise.all(probes.map((p) => p.close()));
  }
});

test('a probe on a given port shares it with another probe that asks to', { timeout: 10_000 }, async () => {
  const first = await UdpProbe.open('127.0.0.1', 0);
  const port = first.port;
  await first.close();
  const a = await UdpProbe.open('127.0.0.1', port);
  const b = await UdpProbe.open('127.0.0.1', port);
  try {
    assert.equal(a.port, b.port);
  } finally {
    await a.close();
    await b.close();
  }
});
