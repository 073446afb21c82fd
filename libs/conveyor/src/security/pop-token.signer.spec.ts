import { Logger, type LoggerService } from '@nestjs/common';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ExtKeyUsage, type TestPki, createTestPki, issueCertificate } from '@conveyor-ci/testing';
import { PopTokenSigner } from './pop-token.signer';

/** Keeps the warnings Nest's Logger is given (the signer warns through it). */
class Warnings implements LoggerService {
  readonly lines: string[] = [];
  log(): void {}
  error(): void {}
  warn(message: unknown): void {
    this.lines.push(String(message));
  }
}

describe('PopTokenSigner: certificate usages the real server and NATS need (contract §10.4)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'signer-spec-'));
  let pki: TestPki;
  let warnings: Warnings;
  beforeAll(() => {
    pki = createTestPki(join(dir, 'pki'), 'signer-driver');
  });
  beforeEach(() => {
    warnings = new Warnings();
    Logger.overrideLogger(warnings);
  });
  afterAll(() => {
    Logger.overrideLogger(new Logger());
    rmSync(dir, { recursive: true, force: true });
  });

  function files(usages: ExtKeyUsage[]): { cert: string; key: string } {
    const issued = issueCertificate('signer-driver', 'client', pki.authority, { extKeyUsage: usages });
    const cert = join(dir, `cert-${Math.random()}.pem`);
    const key = join(dir, `key-${Math.random()}.pem`);
    writeFileSync(cert, issued.certPem);
    writeFileSync(key, issued.keyPem);
    return { cert, key };
  }

  it('warns once, naming the fix, when the certificate lacks serverAuth (the server answers 401)', () => {
    const { cert, key } = files(['clientAuth']);
    PopTokenSigner.fromFiles(cert, key);
    PopTokenSigner.fromFiles(cert, key);
    expect(warnings.lines).toHaveLength(1);
    expect(warnings.lines[0]).toContain(cert);
    expect(warnings.lines[0]).toMatch(/lacks the serverAuth extended key usage/);
    expect(warnings.lines[0]).toMatch(/invalid token/);
    expect(warnings.lines[0]).toMatch(/extendedKeyUsage=serverAuth,clientAuth/);
  });

  it('warns when the certificate lacks clientAuth (NATS mutual TLS refuses it)', () => {
    const { cert, key } = files(['serverAuth']);
    PopTokenSigner.fromFiles(cert, key);
    expect(warnings.lines).toHaveLength(1);
    expect(warnings.lines[0]).toMatch(/lacks the clientAuth extended key usage/);
  });

  it.each<[string, ExtKeyUsage[]]>([
    ['both usages', ['serverAuth', 'clientAuth']],
    ['no extended key usage extension', []],
    ['anyExtendedKeyUsage', ['2.5.29.37.0']],
  ])('says nothing for a certificate with %s', (_name, usages) => {
    const { cert, key } = files(usages);
    PopTokenSigner.fromFiles(cert, key);
    expect(warnings.lines).toEqual([]);
  });
});
