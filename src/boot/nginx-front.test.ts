import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { NginxFrontError, renderNginxFront } from './nginx-front.ts';

const good = { listen: '80', upstream: '127.0.0.1:8081', imagesDir: '/var/lib/metal/images' };

describe('renderNginxFront', () => {
  test('names the upstream, the listener and the two image directories', () => {
    const conf = renderNginxFront({ listen: '[::]:8080', upstream: 'boot.internal:8081', imagesDir: '/srv/metal/images/' });
    assert.match(conf, /server boot\.internal:8081;/);
    assert.match(conf, /listen \[::\]:8080;/);
    assert.match(conf, /alias \/srv\/metal\/images\/builds\/\$metal_build\/\$metal_file;/);
    assert.match(conf, /alias \/srv\/metal\/images\/registration\/\$metal_file;/);
    assert.match(conf, /auth_request_set \$metal_build \$upstream_http_x_metal_build_id;/);
  });

  test('refuses settings that would change the configuration’s meaning, naming the setting', () => {
    const bad: Array<[keyof typeof good, string]> = [
      ['listen', '80; include /etc/passwd'],
      ['listen', '80\nserver {'],
      ['listen', ''],
      ['upstream', '127.0.0.1'],
      ['upstream', '127.0.0.1:8081 backup'],
      ['upstream', 'a:1;'],
      ['imagesDir', 'images'],
      ['imagesDir', '/srv/$host/images'],
      ['imagesDir', '/srv/images; root /'],
      ['imagesDir', '/srv/../etc'],
      ['imagesDir', '/srv/{x}'],
      ['imagesDir', '/srv/a b'],
      ['imagesDir', "/srv/'x'"],
    ];
    for (const [key, value] of bad) {
      assert.throws(
        () => renderNginxFront({ ...good, [key]: value }),
        (err: Error) => err instanceof NginxFrontError && err.message.includes(JSON.stringify(value)),
        `${key}=${JSON.stringify(value)}`,
      );
    }
  });
});
