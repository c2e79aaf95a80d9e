import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { missingToolsSkipReason } from './host-tools.ts';

/** A TLS key and certificate for a test server, with the certificate's SHA-256 fingerprint. */
export interface TestCertificate {
  keyPem: string;
  certPem: string;
  /** e.g. `AB:CD:…`, as Node's `fingerprint256` prints it. */
  fingerprint256: string;
}

/** Why tests needing a test certificate cannot run here (no openssl), or undefined. */
export function opensslSkipReason(): string | undefined {
  return missingToolsSkipReason('TLS tests', { openssl: 'openssl' });
}

/**
 * A fresh self-signed certificate for `127.0.0.1` (and `localhost`), made with the openssl CLI: the only
 * place tests run openssl, with an argument array and a timeout.
 */
export function createSelfSignedCertificate(commonName = 'metal-test-bmc'): TestCertificate {
  const dir = mkdtempSync(join(tmpdir(), 'metal-cert-'));
  try {
    const key = join(dir, 'key.pem');
    const cert = join(dir, 'cert.pem');
    execFileSync(
      'openssl',
      ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', `/CN=${commonName}`, '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost'],
      { timeout: 30_000, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const certPem = readFileSync(cert, 'utf8');
    return { keyPem: readFileSync(key, 'utf8'), certPem, fingerprint256: new X509Certificate(certPem).fingerprint256 };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
