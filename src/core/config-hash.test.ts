import assert from 'node:assert/strict';
import { test } from 'node:test';
import { effectiveConfigHash, type EffectiveConfig } from './config-hash.ts';

const base: EffectiveConfig = {
  profile: { name: 'web', nixos_config: '{ ... }: { }', kernel_params: ['console=ttyS1,115200'] },
  machineConfig: { 'configuration.nix': '{ ... }: { }' },
  hostname: 'web-01',
  nixpkgs: '',
};
const withCheck = (health_check: string | null | undefined): EffectiveConfig => ({ ...base, profile: { ...base.profile!, health_check } });

test('a profile’s health check is part of what an image is built from; none hashes as before health checks existed', () => {
  // The hash this configuration had before health checks existed: stored hashes stay valid.
  assert.equal(effectiveConfigHash(base), '98d99379837a1b8ae4e19580b1c9889e9fb624d2758f3c3432f9a6c9d7acec25');
  assert.equal(effectiveConfigHash(withCheck(undefined)), effectiveConfigHash(base));
  assert.equal(effectiveConfigHash(withCheck(null)), effectiveConfigHash(base));
  assert.notEqual(effectiveConfigHash(withCheck('systemctl is-active nginx')), effectiveConfigHash(base));
  assert.notEqual(effectiveConfigHash(withCheck('systemctl is-active nginx')), effectiveConfigHash(withCheck('systemctl is-active sshd')));
});
