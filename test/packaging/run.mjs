// The packaging test: packs @conveyor-ci/nestjs and @conveyor-ci/testing, installs the tarballs into
// a fresh Nest 11 (CommonJS) app and a fresh Nest 12 (ESM, plain Node) app made from the templates
// beside this file (no --legacy-peer-deps), builds each, starts it against a real nats-server,
// reconciles one event, checks /health/ready and /metrics, and stops it with SIGTERM (exit 0 expected).
// Each app also runs the testing module from the installed package (`src/testing-check.ts`: create(),
// and builder() with an overridden provider, on the app's own @nestjs/testing).
// Needs `npm run build` first (it uses the repo's own nats-server harness) and the package registry.
// Usage: node test/packaging/run.mjs [nest11] [nest12]
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const require = createRequire(import.meta.url);
const { ConveyorTestEnv, makeResource, publishDriverMessage } = require(join(repo, 'dist/libs/testing/src'));

const templates = process.argv.slice(2).length > 0 ? process.argv.slice(2) : ['nest11', 'nest12'];
const work = mkdtempSync(join(tmpdir(), 'conveyor-packaging-'));
const keep = process.env.KEEP_PACKAGING_DIR === 'true';

function run(cmd, args, cwd) {
  execFileSync(cmd, args, {
    cwd,
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, npm_config_loglevel: 'error' },
  });
}

function freePort() {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => res(port));
    });
  });
}

async function waitFor(what, check, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

function exitOf(child) {
  return new Promise((res) => child.once('exit', (code, signal) => res({ code, signal })));
}

async function checkApp(name, appDir, env) {
  const port = await freePort();
  const driverName = `packaging-${name}`;
  const child = spawn(process.execPath, ['dist/main.js'], {
    cwd: appDir,
    env: { ...process.env, PORT: String(port), CONVEYOR_NATS_URL: env.url, CONVEYOR_DRIVER_NAME: driverName },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const exited = exitOf(child);
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`${name} /health/ready`, async () => (await fetch(`${base}/health/ready`)).status === 200);
    const sent = await publishDriverMessage(env.js, {
      resource: makeResource({ name: `w-${name}`, resource: 'widget', spec: {} }),
    });
    const result = await env.results.waitForRun(sent.message.run_id, 20_000);
    const r = result.driverresult;
    if (!r.success || r.driver !== driverName || r.data?.runtime !== name) {
      throw new Error(`unexpected result: ${JSON.stringify(r)}`);
    }
    // A run is counted finished at its ack, just after its result is out: poll for it.
    const counted = /^conveyor_runs_finished_total\{resource="widget",outcome="succeeded"\} 1$/m;
    await waitFor(
      '/metrics counting the run',
      async () => counted.test(await (await fetch(`${base}/metrics`)).text()),
      10_000,
    );
    const health = await (await fetch(`${base}/health`)).json();
    if (health.status !== 'ok') throw new Error(`/health: ${JSON.stringify(health)}`);
    child.kill('SIGTERM');
    const { code, signal } = await exited;
    if (code !== 0) throw new Error(`exit ${code ?? signal} after SIGTERM`);
    console.log(`${name}: reconciled (${r.message}), /health ok, /metrics counted it, SIGTERM -> exit 0`);
  } catch (err) {
    child.kill('SIGKILL');
    console.error(`--- ${name} output ---\n${output}`);
    throw err;
  }
}

async function main() {
  const packs = join(work, 'packages');
  run('bash', [join(repo, 'scripts/pack-packages.sh'), packs], repo);
  const tarballs = ['conveyor-ci-nestjs-0.1.0.tgz', 'conveyor-ci-testing-0.1.0.tgz'].map((t) =>
    join(packs, t),
  );
  const env = await ConveyorTestEnv.start();
  try {
    for (const name of templates) {
      const appDir = join(work, name);
      cpSync(join(here, 'templates', name), appDir, { recursive: true });
      // Peers are checked: npm 11 refuses an unmet peer (ERESOLVE) without --legacy-peer-deps.
      run('npm', ['install', '--no-audit', '--no-fund', ...tarballs], appDir);
      run(process.execPath, [join(appDir, 'node_modules/typescript/bin/tsc'), '-p', appDir], appDir);
      run(process.execPath, ['dist/testing-check.js'], appDir);
      await checkApp(name, appDir, env);
    }
  } finally {
    await env.stop();
    if (!keep) rmSync(work, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(`packaging test failed: ${err?.stack ?? err}`);
  if (!keep) rmSync(work, { recursive: true, force: true });
  process.exit(1);
});
