import { Controller } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { createPrivateKey, createHash, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import { PopTokenSigner, Reconcile, Resource } from '@conveyor-ci/nestjs';
import { popAlgorithmOf } from '@conveyor-ci/nestjs/internal';
import {
  ConveyorControlPlane,
  TestPki,
  createTestPki,
  issueCertificate,
  waitForConsumer,
} from '@conveyor-ci/testing';
import { startDriverApp, uniqueDriverName } from '../support/driver-app';

const dir = mkdtempSync(join(tmpdir(), 'api-auth-'));
let pki: TestPki;
let plane: ConveyorControlPlane;

beforeAll(async () => {
  pki = createTestPki(join(dir, 'pki'), 'api-driver');
  // A short SSE heartbeat: the stream's headers go out with the first one.
  plane = await ConveyorControlPlane.start({ auth: pki, heartbeatMs: 200 });
});
afterAll(async () => {
  await plane?.stop();
  rmSync(dir, { recursive: true, force: true });
});

async function call(path: string, authorization?: string): Promise<{ status: number; body: string }> {
  const response = await fetch(`${plane.apiUrl}${path}`, {
    headers: authorization ? { Authorization: authorization } : {},
  });
  return { status: response.status, body: await response.text() };
}

const refused = (error: string) => ({ status: 401, body: JSON.stringify({ error }) });

/** A token with the client's chain and cnf, with claims and key of the test's choosing. */
async function craftToken(
  claims: Record<string, unknown>,
  options: { key?: string; certPem?: string; alg?: string } = {},
): Promise<string> {
  const certPem = options.certPem ?? readFileSync(pki.clientCert, 'utf8');
  const leaf = new X509Certificate(certPem);
  const now = Math.floor(Date.now() / 1000);
  const cnf = { 'x5t#S256': createHash('sha256').update(leaf.raw).digest('base64url') };
  return new SignJWT({ cnf, iat: now - 5, exp: now + 60, ...claims })
    .setProtectedHeader({ alg: options.alg ?? 'RS256', x5c: [leaf.raw.toString('base64')] })
    .sign(createPrivateKey(options.key ?? readFileSync(pki.clientKey)));
}

describe('the PoP JWT signer', () => {
  it('signs what §10.4 asks: alg from the key, x5c, backdated iat, 2 min exp, cnf thumbprint, iss = CN; cached', async () => {
    const signer = PopTokenSigner.fromFiles(pki.clientCert, pki.clientKey);
    const header = await signer.authorizationHeader();
    expect(await signer.authorizationHeader()).toBe(header);
    const token = header.replace(/^Bearer /, '');
    const leaf = new X509Certificate(readFileSync(pki.clientCert));
    expect(decodeProtectedHeader(token)).toEqual({
      alg: 'RS256',
      typ: 'JWT',
      x5c: [leaf.raw.toString('base64')],
    });
    const claims = decodeJwt(token);
    const now = Date.now() / 1000;
    expect(claims.iat).toBeLessThanOrEqual(now - 4);
    expect(claims.exp! - now).toBeGreaterThan(115);
    expect(claims.exp! - now).toBeLessThanOrEqual(120);
    expect(claims).toMatchObject({
      iss: 'api-driver',
      cnf: { 'x5t#S256': createHash('sha256').update(leaf.raw).digest('base64url') },
    });
  });

  it('picks ES256/ES384/ES512/PS256 from the key and refuses keys the server cannot verify', () => {
    const curve = (namedCurve: string) => generateKeyPairSync('ec', { namedCurve }).privateKey;
    expect(popAlgorithmOf(curve('prime256v1'))).toBe('ES256');
    expect(popAlgorithmOf(curve('secp384r1'))).toBe('ES384');
    expect(popAlgorithmOf(curve('secp521r1'))).toBe('ES512');
    expect(popAlgorithmOf(generateKeyPairSync('rsa-pss', { modulusLength: 2048 }).privateKey)).toBe('PS256');
    expect(() => popAlgorithmOf(generateKeyPairSync('ed25519').privateKey)).toThrow(
      /accepts RSA or EC P-256\/P-384\/P-521 keys/,
    );
  });

  it('refuses at startup a key that does not belong to the certificate', () => {
    const other = issueCertificate('other', 'client', pki.authority);
    writeFileSync(join(dir, 'other-key.pem'), other.keyPem);
    expect(() => PopTokenSigner.fromFiles(pki.clientCert, join(dir, 'other-key.pem'))).toThrow(
      /does not belong to the first certificate/,
    );
  });
});

describe('the control plane in auth mode checks tokens as the server does', () => {
  it('lets public paths through and refuses a missing or malformed header with the server bodies', async () => {
    expect((await call('/metrics')).status).toBe(200);
    expect(await call('/resources/pipeline/x')).toEqual(refused('missing Authorization header'));
    expect(await call('/', 'Basic YTpi')).toEqual(refused('invalid Authorization header format'));
    expect(await call('/logs?runid=x', 'Bearer')).toEqual(refused('invalid Authorization header format'));
  });

  it("accepts the signer's tokens on every route, SSE included", async () => {
    const authorization = await PopTokenSigner.fromFiles(pki.clientCert, pki.clientKey).authorizationHeader();
    // Past the gate: the server's own not-found quirk (500), not a 401.
    expect((await call('/resources/pipeline/missing', authorization)).status).toBe(500);
    expect((await call('/logs?runid=r1', authorization)).status).toBe(200);
    const stream = new AbortController();
    const sse = await fetch(`${plane.apiUrl}/logs/pipeline/r1`, {
      headers: { Authorization: authorization },
      signal: stream.signal,
    });
    expect(sse.status).toBe(200);
    stream.abort();
  });

  it('refuses tampered, expired, future-iat, wrong-key, foreign-CA, wrong-cnf and HS256 tokens', async () => {
    const good = await craftToken({});
    const [h, p, s] = good.split('.');
    const tamperedPayload = Buffer.from(JSON.stringify({ ...decodeJwt(good), exp: 9_999_999_999 })).toString(
      'base64url',
    );
    expect(await call('/', `Bearer ${h}.${tamperedPayload}.${s}`)).toEqual(refused('invalid token'));
    expect(await call('/', `Bearer ${h}.${p}.${s.slice(0, -4)}AAAA`)).toEqual(refused('invalid token'));
    const now = Math.floor(Date.now() / 1000);
    expect(await call('/', `Bearer ${await craftToken({ exp: now - 1 })}`)).toEqual(refused('token expired'));
    expect(await call('/', `Bearer ${await craftToken({ iat: now + 30 })}`)).toEqual(
      refused('token issued in the future'),
    );
    const stranger = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({
      type: 'pkcs8',
      format: 'pem',
    });
    expect(await call('/', `Bearer ${await craftToken({}, { key: stranger.toString() })}`)).toEqual(
      refused('invalid token'),
    );
    const rogueCa = issueCertificate('rogue CA', 'ca');
    const rogue = issueCertificate('api-driver', 'client', rogueCa);
    expect(
      await call('/', `Bearer ${await craftToken({}, { key: rogue.keyPem, certPem: rogue.certPem })}`),
    ).toEqual(refused('invalid token'));
    expect(await call('/', `Bearer ${await craftToken({ cnf: { 'x5t#S256': 'not-the-leaf' } })}`)).toEqual(
      refused('invalid token'),
    );
    const hs = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setExpirationTime('1m')
      .sign(new Uint8Array(32));
    expect(await call('/', `Bearer ${hs}`)).toEqual(refused('invalid token'));
    // The control: the same crafting with nothing wrong passes.
    expect((await call('/', `Bearer ${good}`)).status).toBe(200);
  });

  it('answers a CORS preflight before the token check, and puts the CORS header on a 401 (Fiber middleware order)', async () => {
    const preflight = await fetch(`${plane.apiUrl}/resources`, {
      method: 'OPTIONS',
      headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'POST' },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
    const refusedWithOrigin = await fetch(`${plane.apiUrl}/resources/pipeline/x`, {
      headers: { Origin: 'http://localhost:3000' },
    });
    expect(refusedWithOrigin.status).toBe(401);
    expect(refusedWithOrigin.headers.get('access-control-allow-origin')).toBe('*');
  });

  it('refuses a token whose leaf has clientAuth only, as the real server does (Go x509.Verify default: serverAuth)', async () => {
    const clientOnly = issueCertificate('api-driver', 'client', pki.authority, {
      extKeyUsage: ['clientAuth'],
    });
    const token = await craftToken({}, { key: clientOnly.keyPem, certPem: clientOnly.certPem });
    expect(await call('/', `Bearer ${token}`)).toEqual(refused('invalid token'));
    const both = issueCertificate('api-driver', 'client', pki.authority);
    const accepted = await craftToken({}, { key: both.keyPem, certPem: both.certPem });
    expect((await call('/', `Bearer ${accepted}`)).status).toBe(200);
  });
});

@Controller()
class PingDriver {
  @Reconcile({ resource: 'ping' })
  reconcile(@Payload() resource: Resource) {
    return { success: true, message: resource.name };
  }
}

describe('a driver against the secured control plane', () => {
  it('binds over mutual TLS and gets its signer from the module (same certificate and key as NATS)', async () => {
    const name = uniqueDriverName('api-auth');
    const { app } = await startDriverApp({
      options: {
        driverName: name,
        servers: plane.natsUrl,
        tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
        apiUrl: plane.apiUrl,
        apiAuth: { enabled: true },
      },
      controllers: [PingDriver],
    });
    try {
      await waitForConsumer(plane.jsm, name);
      const signer = app.get(PopTokenSigner);
      expect(signer.enabled).toBe(true);
      expect((await call('/', await signer.authorizationHeader())).status).toBe(200);
    } finally {
      await app.close();
    }
  });
});
