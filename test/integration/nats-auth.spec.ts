import { Controller, INestApplication } from '@nestjs/common';
import { Payload } from '@nestjs/microservices';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConnectionOptions, credsAuthenticator, nkeyAuthenticator } from 'nats';
import { createUser } from 'nkeys.js';
import { ConveyorModuleOptions, ConveyorStrategy, Reconcile, Resource } from '@conveyor-ci/nestjs';
import { ConveyorHealthModule } from '@conveyor-ci/nestjs/health';
import {
  ConveyorTestEnv,
  TestPki,
  createNatsOperator,
  createTestPki,
  issueCertificate,
  natsTlsConfig,
} from '@conveyor-ci/testing';
import { CapturedLogs } from '../support/captured-logs';
import { startDriverApp, uniqueDriverName } from '../support/driver-app';
import { publishStep } from '../support/publish-step';

@Controller()
class SecuredDriver {
  @Reconcile({ resource: 'secured' })
  reconcile(@Payload() resource: Resource) {
    return { success: true, message: `reconciled ${resource.name}` };
  }
}

const dir = mkdtempSync(join(tmpdir(), 'nats-auth-'));
let pki: TestPki;
beforeAll(() => {
  pki = createTestPki(join(dir, 'pki'), 'secured-driver');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

async function secureEnv(config: string, admin: Partial<ConnectionOptions>): Promise<ConveyorTestEnv> {
  const env = await ConveyorTestEnv.start({ config }, admin);
  cleanups.push(() => env.stop());
  return env;
}

/** A driver app with /health on a free port and every log line captured. */
async function startSecuredDriver(
  env: ConveyorTestEnv,
  options: Partial<ConveyorModuleOptions>,
): Promise<{
  app: INestApplication;
  strategy: ConveyorStrategy;
  logs: CapturedLogs;
  health: string;
  name: string;
}> {
  const name = uniqueDriverName('secured');
  const logs = new CapturedLogs();
  const { app, strategy } = await startDriverApp({
    options: { driverName: name, servers: env.url, ...options },
    controllers: [SecuredDriver],
    imports: [ConveyorHealthModule],
    configure: (a) => a.useLogger(logs),
  });
  cleanups.push(() => app.close());
  await app.listen(0, '127.0.0.1');
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, strategy, logs, health: `http://127.0.0.1:${port}/health/ready`, name };
}

/** Retries `assertion` (expect calls) until it passes or `timeoutMs` runs out (then its last failure). */
async function eventually(assertion: () => unknown, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await assertion();
      return;
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

/** The driver consumes (pulling: a fresh consumer exists), reconciles one step and its result is published. */
async function expectReconciles(
  env: ConveyorTestEnv,
  strategy: ConveyorStrategy,
  name: string,
): Promise<void> {
  await eventually(() => expect(strategy.readiness).toEqual({ ready: true }));
  const { message } = await publishStep(env, name, 'secured');
  const result = await env.results.waitForRun(message.run_id);
  expect(result.driverresult).toMatchObject({ success: true, driver: name });
}

async function readiness(url: string): Promise<{ status: number; body: string }> {
  const response = await fetch(url);
  return { status: response.status, body: await response.text() };
}

const usersConfig = (driverPassword: string) =>
  `authorization { users = [ { user: admin, password: "admin-pw" }, { user: driver, password: "${driverPassword}" } ] }`;
const admin = { user: 'admin', pass: 'admin-pw' };

describe('each NATS auth mode against a real nats-server configured for it', () => {
  it('user/password, also when written into the URL (taken out of it)', async () => {
    const env = await secureEnv(usersConfig('right-pw'), admin);
    const viaOptions = await startSecuredDriver(env, { natsAuth: { user: 'driver', password: 'right-pw' } });
    await expectReconciles(env, viaOptions.strategy, viaOptions.name);
    const viaUrl = await startSecuredDriver(env, {
      servers: env.url.replace('nats://', 'nats://driver:right-pw@'),
    });
    await expectReconciles(env, viaUrl.strategy, viaUrl.name);
    expect(viaUrl.logs.lines.join('\n')).not.toContain('right-pw');
  });

  it('token', async () => {
    const env = await secureEnv('authorization { token: "tok-3x4mple-s3cret" }', {
      token: 'tok-3x4mple-s3cret',
    });
    const driver = await startSecuredDriver(env, { natsAuth: { token: 'tok-3x4mple-s3cret' } });
    await expectReconciles(env, driver.strategy, driver.name);
  });

  it('nkey seed file', async () => {
    const adminKey = createUser();
    const driverKey = createUser();
    const env = await secureEnv(
      `authorization { users = [ { nkey: ${adminKey.getPublicKey()} }, { nkey: ${driverKey.getPublicKey()} } ] }`,
      { authenticator: nkeyAuthenticator(adminKey.getSeed()) },
    );
    const seedFile = join(dir, `${Date.now()}.nk`);
    writeFileSync(seedFile, `# the driver's nkey\n${new TextDecoder().decode(driverKey.getSeed())}\n`);
    const driver = await startSecuredDriver(env, { natsAuth: { nkey: seedFile } });
    await expectReconciles(env, driver.strategy, driver.name);
  });

  it('operator mode: a creds file with a user JWT (resolver: MEMORY)', async () => {
    const operator = await createNatsOperator();
    const adminCreds = await operator.userCreds('admin');
    const env = await secureEnv(operator.config, {
      authenticator: credsAuthenticator(new TextEncoder().encode(adminCreds)),
    });
    const credsFile = join(dir, `${Date.now()}.creds`);
    writeFileSync(credsFile, await operator.userCreds('driver'));
    const driver = await startSecuredDriver(env, { natsAuth: { creds: credsFile } });
    await expectReconciles(env, driver.strategy, driver.name);
  });

  it('TLS with a CA only, and mutual TLS', async () => {
    const tlsOnly = await secureEnv(natsTlsConfig(pki, false), { tls: { caFile: pki.ca } });
    const caOnly = await startSecuredDriver(tlsOnly, {
      servers: tlsOnly.url.replace('nats://', 'tls://'),
      tls: { ca: pki.ca },
    });
    await expectReconciles(tlsOnly, caOnly.strategy, caOnly.name);

    const mutual = await secureEnv(natsTlsConfig(pki, true), {
      tls: { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey },
    });
    const withCert = await startSecuredDriver(mutual, {
      tls: { ca: pki.ca, cert: pki.clientCert, key: pki.clientKey },
    });
    await expectReconciles(mutual, withCert.strategy, withCert.name);
  });
});

describe('failures are named plainly, and the driver recovers without a restart', () => {
  it('wrong password: the plain message within 5 s in the log and /health/ready; a reload with the right one lets it in', async () => {
    const env = await secureEnv(usersConfig('old-pw'), admin);
    const startedAt = Date.now();
    const driver = await startSecuredDriver(env, { natsAuth: { user: 'driver', password: 'n3w-pw-123' } });
    const plain = 'authorization violation: check CONVEYOR_NATS_USER / CONVEYOR_NATS_PASSWORD';
    await eventually(() => expect(driver.logs.matching(new RegExp(plain))).not.toHaveLength(0), 5000);
    expect(Date.now() - startedAt).toBeLessThan(5000);
    const [line] = driver.logs.matching(/cannot connect to NATS/);
    expect(line).toMatch(
      /cannot connect to NATS nats:\/\/127\.0\.0\.1:\d+ \(attempt 1\): authorization violation: .*; next attempt in \d+\.\d s/,
    );
    const ready = await readiness(driver.health);
    expect(ready.status).toBe(503);
    expect(ready.body).toContain(plain);
    expect(ready.body).toContain(env.url);

    await env.server.reload(usersConfig('n3w-pw-123'));
    await expectReconciles(env, driver.strategy, driver.name);
    expect((await readiness(driver.health)).status).toBe(200);
    expect(driver.logs.lines.join('\n')).not.toContain('n3w-pw-123');
  });

  it('credentials revoked while connected: reconnects keep trying through auth errors until the server takes them again', async () => {
    const env = await secureEnv(usersConfig('pw-one'), admin);
    const driver = await startSecuredDriver(env, { natsAuth: { user: 'driver', password: 'pw-one' } });
    await expectReconciles(env, driver.strategy, driver.name);

    await env.server.reload(usersConfig('pw-two'));
    await eventually(async () => {
      const ready = await readiness(driver.health);
      expect(ready.status).toBe(503);
      expect(ready.body).toContain(
        'authorization violation: check CONVEYOR_NATS_USER / CONVEYOR_NATS_PASSWORD',
      );
    }, 10_000);
    // Well past nats.js's "two identical auth errors and give up".
    await eventually(
      () => expect(driver.logs.matching(/reconnect attempt [3-9]/).length).toBeGreaterThan(0),
      10_000,
    );

    await env.server.reload(usersConfig('pw-one'));
    await eventually(async () => expect((await readiness(driver.health)).status).toBe(200), 10_000);
    await expectReconciles(env, driver.strategy, driver.name);
    expect(driver.logs.matching(/closed for good/)).toEqual([]);
  });

  it('a server that goes away: each reconnect attempt is logged with the probed cause, and readiness says it', async () => {
    const env = await secureEnv('', {});
    const driver = await startSecuredDriver(env, {});
    await expectReconciles(env, driver.strategy, driver.name);
    await env.server.halt();
    const refused =
      /cannot connect to NATS 127\.0\.0\.1:\d+ \(reconnect attempt \d+\): connection refused .*; next attempt in 1\.0 s/;
    await eventually(() => expect(driver.logs.matching(refused).length).toBeGreaterThanOrEqual(2), 10_000);
    const ready = await readiness(driver.health);
    expect(ready.status).toBe(503);
    expect(ready.body).toMatch(
      /disconnected from NATS, reconnecting to NATS 127\.0\.0\.1:\d+: connection refused/,
    );
    await env.server.resume();
    await expectReconciles(env, driver.strategy, driver.name);
    expect((await readiness(driver.health)).status).toBe(200);
  });

  it('a connection closed for good is dialed again', async () => {
    const env = await secureEnv(usersConfig('pw-one'), admin);
    const driver = await startSecuredDriver(env, { natsAuth: { user: 'driver', password: 'pw-one' } });
    await expectReconciles(env, driver.strategy, driver.name);
    const first = driver.strategy.unwrap();
    await first.close();
    await eventually(() => expect(driver.logs.matching(/closed for good .*dialing again/)).toHaveLength(1));
    await eventually(() => expect(driver.strategy.unwrap()).not.toBe(first));
    await expectReconciles(env, driver.strategy, driver.name);
  });

  it('a server that requires a client certificate says so; a certificate from another CA is named as refused', async () => {
    const env = await secureEnv(natsTlsConfig(pki, true), {
      tls: { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey },
    });
    const noCert = await startSecuredDriver(env, { tls: { ca: pki.ca } });
    const missing = 'the server requires a client certificate: set CONVEYOR_TLS_CERT and CONVEYOR_TLS_KEY';
    await eventually(() => expect(noCert.logs.matching(new RegExp(missing))).not.toHaveLength(0), 5000);
    expect((await readiness(noCert.health)).body).toContain(missing);

    const rogueCa = issueCertificate('rogue CA', 'ca');
    const rogue = issueCertificate('rogue-driver', 'client', rogueCa);
    writeFileSync(join(dir, 'rogue.pem'), rogue.certPem);
    writeFileSync(join(dir, 'rogue-key.pem'), rogue.keyPem);
    const refused = await startSecuredDriver(env, {
      tls: { ca: pki.ca, cert: join(dir, 'rogue.pem'), key: join(dir, 'rogue-key.pem') },
    });
    await eventually(
      () => expect(refused.logs.matching(/the server refused the client certificate/)).not.toHaveLength(0),
      5000,
    );
  });
});
