import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { findLabHost } from './lab-host.ts';
import { labSkipReason } from './lab-requirements.ts';
import { readNewc } from './newc-reader.ts';
import { buildRegistrationImage } from './registration-image.ts';

const skip = labSkipReason();

describe('buildRegistrationImage', { skip }, () => {
  let dir: string;
  let imagesDir: string;
  let agentFile: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'metal-lab-image-'));
    imagesDir = join(dir, 'images');
    agentFile = join(dir, 'agent.sh');
    writeFileSync(agentFile, '#!/bin/sh\necho first agent\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('publishes the cloud kernel, an initrd running the agent, and boot.json with sizes and digests', async () => {
    const host = findLabHost();
    const image = await buildRegistrationImage({ imagesDir, agentFile });
    const regDir = join(imagesDir, 'registration');
    assert.equal(image.dir, regDir);
    assert.deepEqual(readdirSync(regDir).sort(), ['boot.json', 'bzImage', 'initrd']);
    assert.ok(readFileSync(join(regDir, 'bzImage')).equals(readFileSync(host.kernel)));

    const bootJson = JSON.parse(readFileSync(join(regDir, 'boot.json'), 'utf8'));
    assert.deepEqual(bootJson.kernel_params, ['console=ttyS0', 'panic=-1']);
    assert.equal(bootJson.init, undefined, 'a busybox initrd needs no init=');
    for (const name of ['bzImage', 'initrd'] as const) {
      const data = readFileSync(join(regDir, name));
      assert.deepEqual(bootJson.files[name], { size: data.length, sha256: createHash('sha256').update(data).digest('hex') });
    }

    const entries = new Map(readNewc(gunzipSync(readFileSync(join(regDir, 'initrd')))).map((e) => [e.name, e]));
    assert.equal(entries.get('usr/bin/metal-agent')!.data.toString(), '#!/bin/sh\necho first agent\n');
    assert.equal(entries.get('init')!.mode, 0o100755);
    assert.match(entries.get('init')!.data.toString(), /sh \/usr\/bin\/metal-agent\n[\s\S]*poweroff -f/);
    for (const applet of ['bin/sh', 'sbin/udhcpc', 'sbin/insmod', 'sbin/poweroff', 'usr/bin/wget']) {
      assert.equal(entries.get(applet)?.data.toString(), '/bin/busybox', `${applet} links to busybox`);
    }
    assert.ok(entries.get('bin/busybox')!.data.equals(readFileSync(host.busybox)));

    const modules = entries.get('etc/metal/modules')!.data.toString().trim().split('\n');
    const names = modules.map((m) => m.replace(/^.*\//, '').replace(/\.ko$/, ''));
    assert.deepEqual(names, ['virtio_ring', 'virtio', 'virtio_pci_modern_dev', 'virtio_pci_legacy_dev', 'virtio_pci', 'failover', 'net_failover', 'virtio_net', 'virtio_blk']);
    for (const m of modules) assert.ok(entries.has(m.slice(1)), `${m} is in the initrd`);
    assert.ok(modules.every((m) => m.startsWith(`/lib/modules/${host.kernelVersion}/`)));
  });

  test('a rebuild replaces the image whole and leaves no staging directories', async () => {
    writeFileSync(agentFile, '#!/bin/sh\necho second agent\n');
    await buildRegistrationImage({ imagesDir, agentFile });
    assert.deepEqual(readdirSync(imagesDir), ['registration']);
    const entries = readNewc(gunzipSync(readFileSync(join(imagesDir, 'registration', 'initrd'))));
    assert.equal(entries.find((e) => e.name === 'usr/bin/metal-agent')!.data.toString(), '#!/bin/sh\necho second agent\n');
  });

  test('a missing agent is a clear error and leaves the published image as it was', async () => {
    const before = readFileSync(join(imagesDir, 'registration', 'initrd'));
    await assert.rejects(buildRegistrationImage({ imagesDir, agentFile: join(dir, 'missing.sh') }), /lab: cannot read the registration agent .*missing\.sh/);
    assert.ok(readFileSync(join(imagesDir, 'registration', 'initrd')).equals(before));
    assert.deepEqual(readdirSync(imagesDir), ['registration']);
  });

  test('the default agent is the project\'s registration agent', async () => {
    await buildRegistrationImage({ imagesDir });
    const agent = readNewc(gunzipSync(readFileSync(join(imagesDir, 'registration', 'initrd')))).find((e) => e.name === 'usr/bin/metal-agent')!;
    assert.ok(agent.data.equals(readFileSync(new URL('../agent/metal-agent.sh', import.meta.url))));
  });
});
