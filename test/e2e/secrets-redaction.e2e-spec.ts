import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  ConveyorTestEnv,
  DriverProcess,
  LokiServer,
  TestPki,
  createTestPki,
  eventually,
  freePort,
  makeResource,
  natsTlsConfig,
  publishDriverMessage,
} from '@conveyor-ci/testing';
import { REFERENCE_DRIVER_ENTRY, whenConsuming } from '../support/reference-driver';
import { storedRunLogs } from '../support/stored-logs';

const NATS_PASSWORD = 'nats-Pa55-9f2c1e';
const NATS_TOKEN = 'nats-T0ken-77aa0c';
const LOKI_PASSWORD = 'loki-Pa55-3b8d21';
const LOKI_BEARER = 'loki-B3arer-c4e6f0';
/** A secret of the pipeline's own, in its step env: masked wherever the driver prints it. */
const STEP_TOKEN = 'step-T0ken-5d9e2a';

const dir = mkdtempSync(join(tmpdir(), 'secrets-'));
let pki: TestPki;
beforeAll(() => {
  pki = createTestPki(join(dir, 'pki'), 'secret-driver');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: (() => Promise<unknown>)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup().catch(() => undefined);
});

/** Every secret the driver was given, and the forms they could leak in. */
function secretForms(): string[] {
  const keyLines = readFileSync(pki.clientKey, 'utf8')
    .split('\n')
    .filter((line) => line.length >= 16 && !line.startsWith('-----'));
  return [
    NATS_PASSWORD,
    NATS_TOKEN,
    LOKI_PASSWORD,
    LOKI_BEARER,
    STEP_TOKEN,
    Buffer.from(`loki-user:${LOKI_PASSWORD}`).toString('base64'),
    ...keyLines,
  ];
}

/**
 * Secrets in `text`, and the driver's own in every base64 run of it decoded (a step may encode
 * what it prints; a step's own token it encodes itself is its author's to keep).
 */
function leaks(text: string): string[] {
  const decoded = (text.match(/[A-Za-z0-9+/]{12,}={0,2}/g) ?? [])
    .map((b64) => Buffer.from(b64, 'base64').toString('latin1'))
    .join('\n');
  return secretForms().filter(
    (secret) => text.includes(secret) || (secret !== STEP_TOKEN && decoded.includes(secret)),
  );
}

async function startDriver(env: Record<string, string>): Promise<{ driver: DriverProcess; port: number }> {
  const port = await freePort();
  const driver = new DriverProcess(REFERENCE_DRIVER_ENTRY, {
    CONVEYOR_DRIVER_NAME: `secret-driver-${port}`,
    PORT: String(port),
    HOST: '127.0.0.1',
    ...env,
  });
  cleanups.push(() => driver.stop('SIGKILL'));
  return { driver, port };
}

async function healthBodies(port: number): Promise<string> {
  const bodies = await Promise.all(
    ['/health', '/health/ready', '/health/live'].map(async (path) => {
      const response = await fetch(`http://127.0.0.1:${port}${path}`).catch(() => undefined);
      return `${path} ${response?.status} ${await response?.text()}`;
    }),
  );
  return bodies.join('\n');
}

const output = (driver: DriverProcess) => driver.lines.map((l) => l.raw).join('\n');

describe('no secret in any output of the reference driver', () => {
  it('user/password in the URL, mTLS key and Loki password: refused, then accepted, a step printing them all', async () => {
    const users = (pw: string) =>
      `authorization { users = [ { user: admin, password: "admin-pw" }, { user: driver, password: "${pw}" } ] }`;
    const tls = { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey };
    const env = await ConveyorTestEnv.start(
      { config: `${natsTlsConfig(pki, true)}\n${users('not-yet')}` },
      { user: 'admin', pass: 'admin-pw', tls },
    );
    cleanups.push(() => env.stop());
    const loki = await LokiServer.start({ auth: { username: 'loki-user', password: 'the-real-one' } });
    cleanups.push(() => loki.close());
    const { driver, port } = await startDriver({
      CONVEYOR_NATS_URL: env.url.replace('nats://', `nats://driver:${NATS_PASSWORD}@`),
      CONVEYOR_TLS_CA: pki.ca,
      CONVEYOR_TLS_CERT: pki.clientCert,
      CONVEYOR_TLS_KEY: pki.clientKey,
      LOKI_URL: loki.url.replace('http://', `http://loki-user:${LOKI_PASSWORD}@`),
    });
    let bodies = '';
    await eventually(async () => {
      bodies += await healthBodies(port);
      const plain = 'authorization violation: check CONVEYOR_NATS_USER / CONVEYOR_NATS_PASSWORD';
      // The first failure is logged before HTTP listens: wait for both.
      return output(driver).includes(plain) && bodies.includes(plain);
    }, 'the refused connection in the log and /health');
    expect(bodies).toContain('authorization violation');

    await env.server.reload(`${natsTlsConfig(pki, true)}\n${users(NATS_PASSWORD)}`);
    await whenConsuming(driver);
    const sent = await publishDriverMessage(env.js, {
      driver: `secret-driver-${port}`,
      resource: makeResource({
        name: 'leaky',
        resource: 'pipeline',
        spec: {
          steps: [
            {
              name: 'print-secrets',
              run: 'echo "url=$CONVEYOR_NATS_URL loki=$LOKI_URL key=$CONVEYOR_TLS_KEY"; cat "$CONVEYOR_TLS_KEY"; exit 3',
            },
          ],
        },
      }),
    });
    const result = await env.results.waitForRun(sent.message.run_id);
    await eventually(() => output(driver).includes('Loki rejected'), 'the Loki refusal in the log');
    bodies += await healthBodies(port);
    const stored = (await storedRunLogs(env.jsm, sent.message.run_id)).map((l) => l.raw).join('\n');
    // The step ran, and the driver's own configuration never reached it.
    expect(stored).toContain('url= loki= key=');
    expect(stored).not.toMatch(/PRIVATE KEY/);
    expect(leaks(stored)).toEqual([]);
    expect(leaks(JSON.stringify(result))).toEqual([]);
    expect(leaks(output(driver))).toEqual([]);
    expect(leaks(bodies)).toEqual([]);
  });

  it('every secret configured and accepted: nested fields, a step printing its environment plain and in base64', async () => {
    const env = await ConveyorTestEnv.start(
      {
        config: `authorization { users = [ { user: admin, password: "admin-pw" }, { user: driver, password: "${NATS_PASSWORD}" } ] }`,
      },
      { user: 'admin', pass: 'admin-pw' },
    );
    cleanups.push(() => env.stop());
    const loki = await LokiServer.start({ auth: { bearerToken: LOKI_BEARER } });
    cleanups.push(() => loki.close());
    const { driver, port } = await startDriver({
      CONVEYOR_NATS_URL: env.url,
      CONVEYOR_NATS_USER: 'driver',
      CONVEYOR_NATS_PASSWORD: NATS_PASSWORD,
      LOKI_URL: loki.url,
      LOKI_BEARER_TOKEN: LOKI_BEARER,
    });
    await whenConsuming(driver);
    const name = `secret-driver-${port}`;
    const sent = await publishDriverMessage(env.js, {
      driver: name,
      resource: makeResource({
        name: 'env-printer',
        resource: 'pipeline',
        spec: {
          env: { STEP_TOKEN },
          steps: [
            {
              name: 'print-env',
              run:
                'env; env | base64 -w0; echo; printf %s "$CONVEYOR_NATS_PASSWORD$LOKI_BEARER_TOKEN" | base64; ' +
                'echo "pw=$CONVEYOR_NATS_PASSWORD bearer=$LOKI_BEARER_TOKEN token=$STEP_TOKEN"',
            },
          ],
        },
      }),
    });
    const result = await env.results.waitForRun(sent.message.run_id);
    expect(result.driverresult.success).toBe(true);
    const stored = (await storedRunLogs(env.jsm, sent.message.run_id)).map((l) => l.raw).join('\n');
    // The step ran and printed its environment: its own token masked, the driver's never there.
    expect(stored).toContain('PATH=');
    expect(stored).toContain('pw= bearer= token=***');
    expect(stored).not.toContain('CONVEYOR_');
    // The nested field: the step env in the process log, its value masked.
    expect(output(driver)).toMatch(/STEP_TOKEN\W{1,4}\*\*\*/);
    await eventually(() => loki.entries({ driver: name }).length > 0, 'the run in Loki');
    const inLoki = loki
      .entries({ driver: name })
      .map((e) => e.line)
      .join('\n');
    expect(inLoki).toContain('token=***');
    const bodies = await healthBodies(port);
    expect(leaks(stored)).toEqual([]);
    expect(leaks(inLoki)).toEqual([]);
    // The event carries its resource back (the step env and all): the driver's part is its result.
    expect(leaks(JSON.stringify(result.driverresult))).toEqual([]);
    expect(leaks(output(driver))).toEqual([]);
    expect(leaks(bodies)).toEqual([]);
  });

  it('token and Loki bearer token, both refused', async () => {
    const env = await ConveyorTestEnv.start(
      { config: 'authorization { token: "the-right-token" }' },
      { token: 'the-right-token' },
    );
    cleanups.push(() => env.stop());
    const loki = await LokiServer.start({ auth: { bearerToken: 'the-right-bearer' } });
    cleanups.push(() => loki.close());
    const { driver, port } = await startDriver({
      CONVEYOR_NATS_URL: env.url,
      CONVEYOR_NATS_TOKEN: NATS_TOKEN,
      LOKI_URL: loki.url,
      LOKI_BEARER_TOKEN: LOKI_BEARER,
    });
    let bodies = '';
    await eventually(async () => {
      bodies += await healthBodies(port);
      const plain = 'authorization violation: check CONVEYOR_NATS_TOKEN';
      return output(driver).includes(plain) && bodies.includes(plain) && bodies.includes('GET /ready -> 401');
    }, 'the refused connection in the log and /health');
    expect(bodies).toContain('authorization violation: check CONVEYOR_NATS_TOKEN');
    expect(bodies).toContain('GET /ready -> 401');
    expect(leaks(output(driver))).toEqual([]);
    expect(leaks(bodies)).toEqual([]);
  });

  it('a mistyped URL scheme does not echo the credentials in it', async () => {
    const { driver } = await startDriver({ CONVEYOR_NATS_URL: `htps://driver:${NATS_PASSWORD}@127.0.0.1:1` });
    expect((await driver.exited).code).toBe(1);
    expect(output(driver)).toContain('CONVEYOR_NATS_URL');
    expect(leaks(output(driver))).toEqual([]);
  });

  it('a configuration error does not echo the credentials it refuses', async () => {
    const { driver } = await startDriver({ CONVEYOR_NATS_URL: `wss://driver:${NATS_PASSWORD}@127.0.0.1:1` });
    expect((await driver.exited).code).toBe(1);
    expect(output(driver)).toContain('cannot use wss:// (websocket)');
    expect(leaks(output(driver))).toEqual([]);
  });
});
