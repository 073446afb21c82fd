import { spawnSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as forge from 'node-forge';
import { createLocalAuth } from './control-plane/local-auth';
import { createTestPki, issueCertificate } from './test-pki';

/** OpenSSL, when the machine has it: a third reading of the certificates, by another X.509 stack. */
const openssl = spawnSync('openssl', ['version']).status === 0;

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const ANY_EXTENDED_KEY_USAGE = '2.5.29.37.0';
const EXT_KEY_USAGE = '2.5.29.37';

/**
 * The extended key usage OIDs as the certificate's DER bytes carry them, read by walking the ASN.1
 * (tbsCertificate → [3] extensions → the 2.5.29.37 extension's OCTET STRING → SEQUENCE OF OID) rather
 * than through an X.509 library's interpretation: `undefined` when there is no such extension.
 */
function ekuFromDer(pem: string): string[] | undefined {
  const der = new X509Certificate(pem).raw;
  const cert = forge.asn1.fromDer(forge.util.createBuffer(der.toString('binary')));
  const tbs = (cert.value as forge.asn1.Asn1[])[0];
  const explicit3 = (tbs.value as forge.asn1.Asn1[]).find(
    (node) => node.tagClass === forge.asn1.Class.CONTEXT_SPECIFIC && node.type === 3,
  );
  if (!explicit3) return undefined;
  const extensions = (explicit3.value as forge.asn1.Asn1[])[0].value as forge.asn1.Asn1[];
  for (const extension of extensions) {
    const parts = extension.value as forge.asn1.Asn1[];
    if (forge.asn1.derToOid(parts[0].value as string) !== EXT_KEY_USAGE) continue;
    const octets = parts[parts.length - 1].value as string;
    const sequence = forge.asn1.fromDer(forge.util.createBuffer(octets));
    return (sequence.value as forge.asn1.Asn1[]).map((oid) => forge.asn1.derToOid(oid.value as string));
  }
  return undefined;
}

/** Go's `x509.Verify` with no `KeyUsages` (what the Conveyor server's JWT middleware calls): serverAuth. */
function goAcceptsForServerAuth(eku: string[] | undefined): boolean {
  return eku === undefined || eku.includes(ANY_EXTENDED_KEY_USAGE) || eku.includes(SERVER_AUTH);
}

describe('test PKI certificates (contract §10.4: what the real server accepts)', () => {
  const auth = createLocalAuth('pki-spec-driver');
  afterAll(() => auth.remove());

  it('createLocalAuth issues the client certificate with serverAuth and clientAuth in its DER bytes', () => {
    const eku = ekuFromDer(readFileSync(auth.pki.clientCert, 'utf8'));
    expect(eku).toEqual(expect.arrayContaining([SERVER_AUTH, CLIENT_AUTH]));
    // PoP JWTs: Go's default key usage; NATS mTLS: clientAuth.
    expect(goAcceptsForServerAuth(eku)).toBe(true);
    // Node's reading of the same extension agrees with the bytes.
    expect(new X509Certificate(readFileSync(auth.pki.clientCert)).keyUsage).toEqual(eku);
  });

  it('issues the server certificate with both usages too (the server is its own NATS client)', () => {
    const eku = ekuFromDer(readFileSync(auth.pki.serverCert, 'utf8'));
    expect(eku).toEqual(expect.arrayContaining([SERVER_AUTH, CLIENT_AUTH]));
  });

  (openssl ? it : it.skip)(
    'verifies for both TLS purposes with OpenSSL (sslserver: what Go requires of a PoP leaf)',
    () => {
      for (const cert of [auth.pki.clientCert, auth.pki.serverCert]) {
        for (const purpose of ['sslserver', 'sslclient']) {
          const result = spawnSync('openssl', ['verify', '-CAfile', auth.pki.ca, '-purpose', purpose, cert], {
            encoding: 'utf8',
          });
          expect(`${purpose} ${result.stdout}${result.stderr}`.trim()).toBe(`${purpose} ${cert}: OK`);
        }
      }
    },
  );

  it('leaves the CA without an extended key usage, which Go accepts for any usage', () => {
    expect(ekuFromDer(readFileSync(auth.pki.ca, 'utf8'))).toBeUndefined();
  });

  it('issues a certificate with exactly the usages asked for, or none', () => {
    const dir = mkdtempSync(join(tmpdir(), 'pki-spec-'));
    try {
      const pki = createTestPki(dir);
      const clientOnly = issueCertificate('c', 'client', pki.authority, { extKeyUsage: ['clientAuth'] });
      expect(ekuFromDer(clientOnly.certPem)).toEqual([CLIENT_AUTH]);
      expect(goAcceptsForServerAuth(ekuFromDer(clientOnly.certPem))).toBe(false);
      const none = issueCertificate('n', 'client', pki.authority, { extKeyUsage: [] });
      expect(ekuFromDer(none.certPem)).toBeUndefined();
      const any = issueCertificate('a', 'client', pki.authority, { extKeyUsage: [ANY_EXTENDED_KEY_USAGE] });
      expect(ekuFromDer(any.certPem)).toEqual([ANY_EXTENDED_KEY_USAGE]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
