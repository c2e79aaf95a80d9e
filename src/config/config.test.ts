import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig, parseListen, redactUrl } from './config.ts';

describe('loadConfig', () => {
  test('defaults: SQLite in ./data, images inside it, all listeners', () => {
    const c = loadConfig({}, {});
    assert.match(c.databaseUrl, /^sqlite:\/.*\/data\/metal\.db$/);
    assert.match(c.imagesDir, /\/data\/images$/);
    assert.deepEqual(c.listen, { host: '0.0.0.0', port: 8080 });
    assert.deepEqual(c.bootListen, { host: '0.0.0.0', port: 8081 });
    assert.match(c.bootUrl, /^http:\/\/[0-9.]+:8081$/);
    assert.equal(c.buildTimeoutSeconds, 3600);
    assert.equal(c.buildConcurrency, 1);
    assert.equal(c.keepBuilds, 3);
    assert.equal(loadConfig({ METAL_KEEP_BUILDS: '10' }).keepBuilds, 10);
    assert.equal(c.buildLeaseMs, 30_000);
    assert.equal(c.secureBoot, undefined);
    assert.equal(c.buildBootCheck, 'off');
    assert.equal(c.buildBootCheckTimeoutMs, 600_000);
    assert.equal(loadConfig({ METAL_BUILD_BOOT_CHECK: 'healthy', METAL_BUILD_BOOT_CHECK_TIMEOUT: '90' }).buildBootCheck, 'healthy');
    assert.equal(loadConfig({ METAL_BUILD_BOOT_CHECK_TIMEOUT: '90' }).buildBootCheckTimeoutMs, 90_000);
    assert.equal(c.enrollRate, 60);
    assert.equal(c.powerConcurrency, 16);
    assert.equal(c.requestTimeoutMs, 30_000);
    assert.equal(c.powerCallTimeoutMs, 10_000);
    assert.equal(c.powerPollIntervalMs, 300_000);
    assert.equal(loadConfig({ METAL_POWER_POLL_INTERVAL: '0' }).powerPollIntervalMs, 0, '0 turns the poller off');
    assert.match(c.nixEntry, /\/nix\/netboot\.nix$/);
    assert.equal(c.nixpkgs, undefined);
    assert.deepEqual(c.consoles, ['tty0', 'ttyS0,115200', 'ttyS1,115200']);
    assert.equal(c.afterEnroll, 'reboot');
    assert.equal(c.proxyDhcpInterface, undefined);
    assert.equal(c.dhcpRange, undefined);
    assert.deepEqual(c.tftpListen, { host: '0.0.0.0', port: 69 });
    assert.equal(c.ipxeDir, '/usr/lib/ipxe');
    assert.ok(Object.isFrozen(c));
  });

  test('flags override environment variables', () => {
    const c = loadConfig({ METAL_LISTEN: '127.0.0.1:1000' }, { METAL_LISTEN: '127.0.0.1:2000' });
    assert.equal(c.listen.port, 2000);
  });

  test('a trailing slash on the boot URL is dropped', () => {
    assert.equal(loadConfig({ METAL_BOOT_URL: 'http://10.0.2.100/' }).bootUrl, 'http://10.0.2.100');
  });

  const invalid: Array<[string, Record<string, string>, RegExp]> = [
    ['timeout not a number', { METAL_BUILD_TIMEOUT: 'soon' }, /METAL_BUILD_TIMEOUT="soon" is invalid: expected a whole number/],
    ['zero concurrency', { METAL_BUILD_CONCURRENCY: '0' }, /METAL_BUILD_CONCURRENCY="0" is invalid: expected a number from 1 to 64/],
    ['a boot check that is no mode', { METAL_BUILD_BOOT_CHECK: 'yes' }, /METAL_BUILD_BOOT_CHECK="yes" is invalid: expected one of off, booted, healthy/],
    ['a boot check time limit too short', { METAL_BUILD_BOOT_CHECK_TIMEOUT: '1' }, /METAL_BUILD_BOOT_CHECK_TIMEOUT="1" is invalid: expected seconds from 5 to 86400/],
    ['a Secure Boot key without its certificate', { METAL_SECURE_BOOT_KEY: '/etc/metal/db.key' }, /METAL_SECURE_BOOT_CERT="" is invalid: METAL_SECURE_BOOT_KEY is set; set its certificate too \(both or neither\)/],
    ['a Secure Boot certificate without its key', { METAL_SECURE_BOOT_CERT: '/etc/metal/db.pem' }, /METAL_SECURE_BOOT_KEY="" is invalid: METAL_SECURE_BOOT_CERT is set; set its private key too \(both or neither\)/],
    ['a Secure Boot key that is not there', { METAL_SECURE_BOOT_KEY: '/nonexistent/db.key', METAL_SECURE_BOOT_CERT: '/nonexistent/db.pem' }, /METAL_SECURE_BOOT_KEY="\/nonexistent\/db\.key" is invalid: cannot be read \(ENOENT\)/],
    ['keeping no builds', { METAL_KEEP_BUILDS: '0' }, /METAL_KEEP_BUILDS="0" is invalid: expected a number from 1 to 1000/],
    ['a word for builds kept', { METAL_KEEP_BUILDS: 'all' }, /METAL_KEEP_BUILDS="all" is invalid: expected a whole number/],
    ['a lease too short', { METAL_BUILD_LEASE_SECONDS: '0.1' }, /METAL_BUILD_LEASE_SECONDS="0.1" is invalid: expected seconds from 0.2 to 3600/],
    ['zero power concurrency', { METAL_POWER_CONCURRENCY: '0' }, /METAL_POWER_CONCURRENCY="0" is invalid: expected a number from 1 to 256/],
    ['a power timeout of zero', { METAL_POWER_TIMEOUT: '0' }, /METAL_POWER_TIMEOUT="0" is invalid: expected seconds from 0.1 to 300/],
    ['a power poll every second', { METAL_POWER_POLL_INTERVAL: '1' }, /METAL_POWER_POLL_INTERVAL="1" is invalid: expected seconds from 10 to 86400/],
    ['negative enroll rate', { METAL_ENROLL_RATE: '-1' }, /METAL_ENROLL_RATE="-1"/],
    ['listen without port', { METAL_LISTEN: 'localhost' }, /METAL_LISTEN="localhost" is invalid: expected host:port/],
    ['port out of range', { METAL_BOOT_LISTEN: ':70000' }, /METAL_BOOT_LISTEN=":70000" is invalid: port must be at most 65535/],
    ['unknown database', { METAL_DATABASE_URL: 'mysql://x' }, /METAL_DATABASE_URL="mysql:\/\/x" is invalid/],
    ['database password is hidden', { METAL_DATABASE_URL: 'mysql://u:hunter2@h/db' }, /u:\*\*\*@h/],
    ['boot URL with a query', { METAL_BOOT_URL: 'http://a/?x=1' }, /METAL_BOOT_URL="http:\/\/a\/\?x=1" is invalid: must not carry a query/],
    ['boot URL not http', { METAL_BOOT_URL: 'ftp://a' }, /must be http:\/\/ or https:\/\//],
    ['boot URL with iPXE specials', { METAL_BOOT_URL: 'http://a/${x}' }, /unsafe in an iPXE script/],
    ['trust proxy garbage', { METAL_TRUST_PROXY: '10.0.0.1,evil host' }, /METAL_TRUST_PROXY=.*"evil host" is not an address/],
    ['bad log level', { METAL_LOG_LEVEL: 'loud' }, /METAL_LOG_LEVEL="loud" is invalid: expected one of/],
    ['a request timeout of zero (it would turn the timeout off)', { METAL_REQUEST_TIMEOUT_SECONDS: '0' }, /METAL_REQUEST_TIMEOUT_SECONDS="0" is invalid: expected seconds from 0.2 to 3600/],
    ['a request timeout of a day', { METAL_REQUEST_TIMEOUT_SECONDS: '86400' }, /METAL_REQUEST_TIMEOUT_SECONDS="86400" is invalid/],
    ['an interface name with a slash', { METAL_PROXYDHCP_INTERFACE: 'eth0/../x' }, /METAL_PROXYDHCP_INTERFACE="eth0\/..\/x" is invalid: expected a network interface name/],
    ['a DHCP range backwards', { METAL_DHCP_RANGE: '10.0.0.9-10.0.0.1' }, /METAL_DHCP_RANGE="10.0.0.9-10.0.0.1" is invalid: the first address is after the last/],
    ['a TFTP listener without a port', { METAL_TFTP_LISTEN: '0.0.0.0' }, /METAL_TFTP_LISTEN="0.0.0.0" is invalid: expected host:port/],
    ['short enroll token', { METAL_ENROLL_TOKEN: 'abc' }, /METAL_ENROLL_TOKEN="\(hidden\)" is invalid/],
    ['nixpkgs that is no nixpkgs tree', { METAL_NIXPKGS: '/nonexistent/nixpkgs' }, /METAL_NIXPKGS="\/nonexistent\/nixpkgs" is invalid: not a nixpkgs tree/],
    ['a nixpkgs tarball without its hash', { METAL_NIXPKGS: 'https://example.org/nixpkgs.tar.gz' }, /METAL_NIXPKGS=.* is invalid: expected a path, or a tarball URL with its hash/],
    ['a nixpkgs tarball with a malformed hash', { METAL_NIXPKGS: 'https://example.org/n.tar.gz#sha256=abc' }, /the sha256 must be in base32/],
    ['a console with a space-separated option', { METAL_CONSOLE: 'ttyS0 115200' }, /METAL_CONSOLE="ttyS0 115200" is invalid: "115200" is not a kernel console/],
    ['a console with shell characters', { METAL_CONSOLE: 'ttyS0;reboot' }, /METAL_CONSOLE=.* is invalid/],
    ['an unknown after-enroll action', { METAL_AFTER_ENROLL: 'explode' }, /METAL_AFTER_ENROLL="explode" is invalid: expected one of reboot, poweroff, hold/],
  ];
  for (const [name, env, message] of invalid) {
    test(`rejects ${name}, naming the key and the value`, () => {
      assert.throws(() => loadConfig(env, {}), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, message);
        assert.doesNotMatch(err.message, /hunter2/);
        return true;
      });
    });
  }

  test('METAL_NIXPKGS: a nixpkgs tree (resolved) or a tarball with its hash; METAL_CONSOLE and METAL_AFTER_ENROLL', () => {
    const stub = new URL('../registration/fixtures/stub-nixpkgs', import.meta.url).pathname;
    assert.deepEqual(loadConfig({ METAL_NIXPKGS: stub }).nixpkgs, { kind: 'path', path: stub });
    const sha256 = '0'.repeat(52);
    assert.deepEqual(loadConfig({ METAL_NIXPKGS: `https://example.org/nixpkgs.tar.gz#sha256=${sha256}` }).nixpkgs, {
      kind: 'tarball',
      url: 'https://example.org/nixpkgs.tar.gz',
      sha256,
    });
    assert.deepEqual(loadConfig({ METAL_CONSOLE: ' ttyS1,115200n8  tty0 ' }).consoles, ['ttyS1,115200n8', 'tty0']);
    assert.equal(loadConfig({}, { METAL_AFTER_ENROLL: 'poweroff' }).afterEnroll, 'poweroff');
  });

  test('parseListen accepts IPv6 and a bare port', () => {
    assert.deepEqual(parseListen('K', '[::1]:8080'), { host: '::1', port: 8080 });
    assert.deepEqual(parseListen('K', ':9000'), { host: '0.0.0.0', port: 9000 });
  });
});

describe('redactUrl', () => {
  test('hides the password of the user part and of query parameters, and keeps where', () => {
    assert.equal(redactUrl('postgres://metal:hunter2@db:5432/metal'), 'postgres://metal:***@db:5432/metal');
    assert.equal(redactUrl('postgres://metal:p@ss@db/metal'), 'postgres://metal:***@db/metal', 'an @ in the password is hidden too');
    assert.equal(
      redactUrl('postgres://metal@db/metal?sslmode=require&password=hunter2&sslpassword=k3y&schema=fleet'),
      'postgres://metal@db/metal?sslmode=require&password=***&sslpassword=***&schema=fleet',
    );
    assert.equal(redactUrl('postgres://metal@db/metal?schema=fleet'), 'postgres://metal@db/metal?schema=fleet', 'nothing to hide');
    assert.equal(redactUrl('sqlite:/var/lib/metal/metal.db'), 'sqlite:/var/lib/metal/metal.db');
  });
});
