import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PopTokenSigner } from '@conveyor-ci/nestjs/internal';
import { type ExtKeyUsage, type TestPki, createTestPki, issueCertificate } from '../test-pki';
import { ApiAuthVerifier } from './api-auth.verifier';

describe("ApiAuthVerifier: Go's x509.Verify default key usage (contract §10.4)", () => {
  const dir = mkdtempSync(join(tmpdir(), 'verifier-spec-'));
  let pki: TestPki;
  let verifier: ApiAuthVerifier;
  beforeAll(() => {
    pki = createTestPki(join(dir, 'pki'), 'verifier-driver');
    verifier = ApiAuthVerifier.fromCaFile(pki.ca);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** The Authorization header our signer makes with a leaf of `usages`, chained to the test CA. */
  async function headerWith(usages: ExtKeyUsage[], issuer = pki.authority, chain: string[] = []) {
    const leaf = issueCertificate(`leaf-${usages.join('-') || 'none'}`, 'client', issuer, {
      extKeyUsage: usages,
    });
    const cert = join(dir, `${Math.random()}.pem`);
    const key = join(dir, `${Math.random()}-key.pem`);
    writeFileSync(cert, [leaf.certPem, ...chain].join(''));
    writeFileSync(key, leaf.keyPem);
    return PopTokenSigner.fromFiles(cert, key).authorizationHeader();
  }

  it('refuses a clientAuth-only leaf with the server\'s "invalid token" (was accepted before)', async () => {
    expect(await verifier.verify(await headerWith(['clientAuth']))).toBe('invalid token');
  });

  it.each<[string, ExtKeyUsage[]]>([
    ['serverAuth and clientAuth', ['serverAuth', 'clientAuth']],
    ['serverAuth only', ['serverAuth']],
    ['no extended key usage extension', []],
    ['anyExtendedKeyUsage', ['2.5.29.37.0']],
  ])('accepts a leaf with %s', async (_name, usages) => {
    expect(await verifier.verify(await headerWith(usages))).toBeUndefined();
  });

  it('accepts the client certificate createTestPki issues', async () => {
    const header = await PopTokenSigner.fromFiles(pki.clientCert, pki.clientKey).authorizationHeader();
    expect(await verifier.verify(header)).toBeUndefined();
  });

  it('checks the whole chain: an intermediate limited to clientAuth makes a good leaf fail, as in Go', async () => {
    const intermediate = issueCertificate('clientAuth-only intermediate', 'ca', pki.authority, {
      extKeyUsage: ['clientAuth'],
    });
    const header = await headerWith(['serverAuth', 'clientAuth'], intermediate, [intermediate.certPem]);
    expect(await verifier.verify(header)).toBe('invalid token');
  });
});
