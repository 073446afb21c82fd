import { ChildProcess, fork } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync } from 'node:fs';
import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { deleteDriverConsumer } from '@conveyor-ci/nestjs';
import {
  ConveyorTestEnv,
  createTestPki,
  makeResource,
  publishDriverMessage,
  registerSpawned,
} from '@conveyor-ci/testing';
import { uniqueDriverName } from '../support/driver-app';
import type { LazyChildMessage, LazyChildStart } from '../support/lazy-loading.child';

/**
 * Issue 28: a driver pays only for the features it uses. A driver without API auth, the client,
 * Loki or tracing must not load jose, axios, ajv, eventsource-parser, OpenTelemetry or pino, neither
 * when it imports the library nor while it starts, connects and reconciles an event; configuring
 * them loads them (so the check below can see them at all). Read from `require.cache` of a driver
 * in a process of its own (test/support/lazy-loading.child.ts), not from timings.
 */

/** Packages (under node_modules) and library files a driver must not load unless it uses their feature. */
const FEATURE_MODULES: Record<string, RegExp> = {
  jose: /\/node_modules\/jose\//,
  axios: /\/node_modules\/axios\//,
  '@nestjs/axios': /\/node_modules\/@nestjs\/axios\//,
  ajv: /\/node_modules\/ajv\//,
  'eventsource-parser': /\/node_modules\/eventsource-parser\//,
  '@opentelemetry/*': /\/node_modules\/@opentelemetry\//,
  'nestjs-pino': /\/node_modules\/nestjs-pino\//,
  pino: /\/node_modules\/pino\//,
  'the Loki sink': /\/libs\/conveyor\/src\/logger\/sinks\/loki\.sink\.ts$/,
};

/** The features' modules among `modules`, by name. */
function featureModulesIn(modules: string[]): string[] {
  return Object.entries(FEATURE_MODULES)
    .filter(([, pattern]) => modules.some((file) => pattern.test(file.split('\\').join('/'))))
    .map(([name]) => name);
}

let env: ConveyorTestEnv;
beforeAll(async () => {
  env = await ConveyorTestEnv.start();
});
afterAll(() => env?.stop());

/** One child driver: started, fed one event, asked for its modules, stopped. */
async function runChildDriver(
  start: Omit<LazyChildStart, 'options'> & { options: Omit<LazyChildStart['options'], 'driverName'> },
): Promise<{ modules: string[]; called?: Extract<LazyChildMessage, { type: 'called' }> }> {
  const driverName = uniqueDriverName('lazy');
  // Nothing of the test runner's environment may configure a feature behind the test's back.
  const childEnv = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(CONVEYOR_|LOKI_|OTEL_)/.test(key)),
  );
  const child: ChildProcess = fork(join(__dirname, '../support/lazy-loading.child.ts'), [], {
    execArgv: ['--require', join(__dirname, '../support/ts-require.js')],
    env: childEnv,
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  registerSpawned({ pid: child.pid });
  let output = '';
  child.stdout!.on('data', (chunk) => (output += chunk));
  child.stderr!.on('data', (chunk) => (output += chunk));
  const exited = once(child, 'exit');
  const messages: LazyChildMessage[] = [];
  let arrived: () => void = () => undefined;
  child.on('message', (message: LazyChildMessage) => {
    messages.push(message);
    arrived();
  });
  const next = async <T extends LazyChildMessage['type']>(type: T, timeoutMs = 60_000) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const failed = messages.find((m) => m.type === 'failed');
      if (failed) throw new Error(`the child driver failed: ${JSON.stringify(failed)}\n${output}`);
      const found = messages.find((m) => m.type === type);
      if (found) return found as Extract<LazyChildMessage, { type: T }>;
      if (child.exitCode !== null || Date.now() > deadline)
        throw new Error(`no "${type}" from the child driver\n${output}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 250);
        arrived = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };
  try {
    child.send({ ...start, options: { ...start.options, driverName } } satisfies LazyChildStart);
    await next('consuming');
    const event = await publishDriverMessage(env.js, {
      resource: makeResource({ name: 'w1', resource: 'lazy', spec: {} }),
    });
    const result = await env.results.waitForRun(event.message.run_id);
    expect(result.driverresult).toMatchObject({ success: true });
    const called = start.useClient ? await next('called') : undefined;
    child.send('report');
    const { modules } = await next('modules');
    await exited;
    return { modules, called };
  } finally {
    child.kill('SIGKILL');
    await deleteDriverConsumer(env.jsm, driverName);
  }
}

describe('a driver loads only what it uses (issue 28)', () => {
  it('without API auth, client, Loki or tracing: none of their packages, through a reconciled event', async () => {
    const { modules } = await runChildDriver({ options: { servers: env.url }, useClient: false });
    expect(modules.length).toBeGreaterThan(100); // Nest and the library: the list is the real one
    expect(featureModulesIn(modules)).toEqual([]);
  });

  it('with API auth, the client and Loki: loads them on use, and they work', async () => {
    const requests: { path: string; authorization?: string }[] = [];
    const api: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
      requests.push({ path: req.url ?? '', authorization: req.headers.authorization });
      req.resume();
      if (req.url?.startsWith('/logs/')) {
        // One line, then the end of the response: the stream ends with it.
        res.writeHead(200, { 'Content-Type': 'text/event-stream' });
        res.end(`data: ${JSON.stringify({ message: 'streamed line' })}\n\n`);
      } else if (req.url?.startsWith('/loki/')) {
        res.writeHead(204).end();
      } else {
        res.writeHead(200, { 'Content-Type': 'text/plain' }).end('conveyor banner');
      }
    });
    api.listen(0, '127.0.0.1');
    await once(api, 'listening');
    const url = `http://127.0.0.1:${(api.address() as AddressInfo).port}`;
    const pkiDir = mkdtempSync(join(tmpdir(), 'lazy-pki-'));
    registerSpawned({ dir: pkiDir });
    const pki = createTestPki(pkiDir);
    try {
      const { modules, called } = await runChildDriver({
        options: {
          servers: env.url,
          apiUrl: url,
          apiAuth: { enabled: true, cert: pki.clientCert, key: pki.clientKey },
          loki: { url, batchIntervalMs: 50 },
        },
        useClient: true,
      });
      expect(featureModulesIn(modules)).toEqual(
        expect.arrayContaining(['jose', 'axios', '@nestjs/axios', 'eventsource-parser', 'the Loki sink']),
      );
      expect(called).toMatchObject({ served: 'conveyor banner', lines: ['streamed line'] });
      const apiCalls = requests.filter((r) => !r.path.startsWith('/loki/'));
      expect(apiCalls.map((r) => r.path)).toEqual(['/', expect.stringMatching(/^\/logs\/pipeline\//)]);
      for (const call of apiCalls) expect(call.authorization).toMatch(/^Bearer ey/);
      // The run's line reached "Loki" (flushed at the latest by the driver's shutdown).
      expect(requests.some((r) => r.path === '/loki/api/v1/push')).toBe(true);
    } finally {
      api.close();
    }
  });
});
