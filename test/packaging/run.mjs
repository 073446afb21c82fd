// The packaging test: packs @conveyor-ci/nestjs, @conveyor-ci/testing and create-conveyor-driver,
// and installs the tarballs into fresh apps (no --legacy-peer-deps; npm refuses an unmet peer):
// - nest11: a Nest 11 CommonJS app as `nest new` makes it, the packages added with the README's
//   Nest 11 install commands verbatim (read from README.md at run time, so the two cannot drift);
//   jest + ts-jest run a spec importing both packages (and calling the API, which loads
//   @nestjs/axios), and the app runs under `node --no-experimental-require-module`: how Node 20.11
//   to 20.18 load modules, where nothing ESM-only may be required;
// - nest12: a Nest 12 ESM app (plain Node) that already serves /metrics with PrometheusModule and
//   /health with its own Terminus controller, which the Conveyor modules join; the README's Nest 12
//   install commands; it also runs the testing module from the installed package;
// - scaffold: a project written by the packed create-conveyor-driver, built, its generated unit
//   test run.
// nest11 is then built again with the packed `conveyor-nestjs bundle` (esbuild installed as the
// production-build guide says) and its bundle runs the same checks, from its code cache.
// Each app then starts against a real nats-server, reconciles one event, answers /health/ready,
// /health and /metrics, and stops with SIGTERM (exit 0 expected). The apps are prepared in parallel
// (installs dominate the time). Needs `npm run build` first (the repo's nats-server harness) and the
// package registry.
// Usage: node test/packaging/run.mjs [nest11] [nest12] [scaffold]; PACKAGING_README=<file> reads the
// install commands from another file (to try a README change before making it);
// KEEP_PACKAGING_DIR=true keeps the apps.
import { spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const require = createRequire(import.meta.url);
const { ConveyorTestEnv, makeResource, publishDriverMessage } = require(join(repo, 'dist/libs/testing/src'));

/** How each app is made, tested and run; `returns` checks its driver's result for event `w-<app>`. */
const APPS = {
  nest11: {
    major: 11,
    jest: true,
    nodeArgs: ['--no-experimental-require-module'],
    bundle: true,
    returns: (r) => r.data?.runtime === 'nest11',
  },
  nest12: { major: 12, testingCheck: true, nodeArgs: [], returns: (r) => r.data?.runtime === 'nest12' },
  scaffold: { scaffold: true, nodeArgs: [], returns: (r) => r.message === 'reconciled w-scaffold' },
};
const chosen = process.argv.slice(2).length > 0 ? process.argv.slice(2) : Object.keys(APPS);
const work = mkdtempSync(join(tmpdir(), 'conveyor-packaging-'));
const keep = process.env.KEEP_PACKAGING_DIR === 'true';

/**
 * Removes the apps (three node_modules trees: a minute of unlinking on a busy machine) in a
 * process of its own, so the test's result does not wait for it.
 */
function removeWork() {
  if (!keep) spawn('rm', ['-rf', work], { detached: true, stdio: 'ignore' }).unref();
}

/** Runs a command, its output kept in `log` (printed if the app fails: the apps run side by side). */
function run(log, cmd, args, cwd) {
  log.push(`$ ${[cmd, ...args].join(' ')}`);
  return new Promise((res, rej) => {
    const child = spawn(cmd, args, {
      cwd,
      stdio: ['ignore', 'pipe', 'pipe'],
      // Quieter only: none of these changes what npm resolves.
      env: { ...process.env, npm_config_loglevel: 'error', npm_config_audit: 'false', npm_config_fund: 'false' },
    });
    child.stdout.on('data', (d) => log.push(String(d).trimEnd()));
    child.stderr.on('data', (d) => log.push(String(d).trimEnd()));
    child.once('error', rej);
    child.once('exit', (code, signal) =>
      code === 0 ? res() : rej(new Error(`${cmd} ${args.join(' ')}: exit ${code ?? signal}`)),
    );
  });
}

/**
 * The README's install commands for a Nest major: the lines of the ```sh block whose first line is
 * `# Nest <major>`, each an `npm install ...` with an optional trailing `# comment`.
 */
function readmeInstallCommands(readme, major) {
  const blocks = [...readme.matchAll(/^```(?:sh|bash|shell)\n([\s\S]*?)^```/gm)].map((m) => m[1]);
  const block = blocks.find((b) => new RegExp(`^# Nest ${major}\\b`).test(b));
  if (!block) {
    throw new Error(`README.md has no install commands for Nest ${major}: a \`\`\`sh block whose first line is "# Nest ${major}"`);
  }
  const commands = block
    .split('\n')
    .map((line) => line.replace(/\s+#.*$/, '').trim())
    .filter((line) => line.startsWith('npm install '));
  if (commands.length === 0) throw new Error(`README.md's Nest ${major} block has no npm install line`);
  return commands;
}

/** A README command as arguments to npm, our packages replaced by their tarballs (not yet published). */
function withTarballs(command, tarballs) {
  return command
    .split(/\s+/)
    .slice(1)
    .map((arg) => {
      const ours = /^@conveyor-ci\/(nestjs|testing)(@.*)?$/.exec(arg);
      return ours ? tarballs[ours[1]] : arg;
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

/** Installs, builds and tests app `name` in `appDir`; returns once it is ready to run. */
async function prepare(name, app, appDir, tarballs, readme, log) {
  const node = process.execPath;
  if (app.scaffold) {
    // What `npm create conveyor-driver <dir>` runs, from the tarball instead of the registry.
    await run(log, 'npm', ['exec', '--yes', `--package=${tarballs.create}`, '--', 'create-conveyor-driver', appDir, '--name', `packaging-${name}`], work);
    await run(log, 'npm', ['install', tarballs.nestjs, tarballs.testing], appDir);
    await run(log, 'npm', ['run', 'build'], appDir);
    await run(log, 'npm', ['test', '--', '--ci'], appDir);
    return;
  }
  cpSync(join(here, 'templates', name), appDir, { recursive: true });
  for (const command of readmeInstallCommands(readme, app.major)) {
    await run(log, 'npm', withTarballs(command, tarballs), appDir);
  }
  await run(log, node, [join(appDir, 'node_modules/typescript/bin/tsc'), '-p', appDir], appDir);
  if (app.jest) await run(log, node, [join(appDir, 'node_modules/jest/bin/jest.js'), '--ci'], appDir);
  if (app.testingCheck) await run(log, node, [...app.nodeArgs, 'dist/testing-check.js'], appDir);
}

/** Starts the built app, reconciles one event through NATS, checks its probes and metrics, SIGTERMs it. */
async function checkApp(name, app, appDir, env, log, entry = 'dist/main.js') {
  const port = await freePort();
  const driverName = `packaging-${name}`;
  const child = spawn(process.execPath, [...app.nodeArgs, entry], {
    cwd: appDir,
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      CONVEYOR_NATS_URL: env.url,
      CONVEYOR_DRIVER_NAME: driverName,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (d) => log.push(String(d).trimEnd()));
  child.stderr.on('data', (d) => log.push(String(d).trimEnd()));
  const exited = exitOf(child);
  try {
    const base = `http://127.0.0.1:${port}`;
    await waitFor(`${name} /health/ready`, async () => (await fetch(`${base}/health/ready`)).status === 200);
    const sent = await publishDriverMessage(env.js, {
      driver: driverName,
      resource: makeResource({ name: `w-${name}`, resource: 'widget', spec: {} }),
    });
    const result = await env.results.waitForRun(sent.message.run_id, 20_000);
    const r = result.driverresult;
    if (!r.success || r.driver !== driverName || !app.returns(r)) {
      throw new Error(`unexpected result: ${JSON.stringify(r)}`);
    }
    // A run is counted finished at its ack, just after its result is out: poll for it.
    const counted = /^conveyor_runs_finished_total\{resource="widget",result="succeeded"\} 1$/m;
    await waitFor('/metrics counting the run', async () => counted.test(await (await fetch(`${base}/metrics`)).text()), 10_000);
    const health = await (await fetch(`${base}/health`)).json();
    if (health.status !== 'ok') throw new Error(`/health: ${JSON.stringify(health)}`);
    child.kill('SIGTERM');
    const { code, signal } = await exited;
    if (code !== 0) throw new Error(`exit ${code ?? signal} after SIGTERM`);
    if (log.some((line) => line.includes('CONVEYOR_CODE_CACHE_REJECTED'))) throw new Error('V8 refused the code cache');
    const how = `${entry === 'dist/main.js' ? '' : ` ${entry}`}${app.nodeArgs.length > 0 ? ` (node ${app.nodeArgs.join(' ')})` : ''}`;
    return `${name}${how}: reconciled (${r.message}), /health ok, /metrics counted it, SIGTERM -> exit 0`;
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
}

async function main() {
  const started = Date.now();
  for (const name of chosen) {
    if (!APPS[name]) throw new Error(`no app ${name}: one of ${Object.keys(APPS).join(', ')}`);
  }
  const readme = readFileSync(process.env.PACKAGING_README ?? join(repo, 'README.md'), 'utf8');
  const packs = join(work, 'packages');
  const packLog = [];
  await run(packLog, 'bash', [join(repo, 'scripts/pack-packages.sh'), packs], repo).catch((err) => {
    console.error(packLog.join('\n'));
    throw err;
  });
  const tarballs = {
    nestjs: join(packs, 'conveyor-ci-nestjs-0.1.0.tgz'),
    testing: join(packs, 'conveyor-ci-testing-0.1.0.tgz'),
    create: join(packs, 'create-conveyor-driver-0.1.0.tgz'),
  };
  const env = await ConveyorTestEnv.start();
  try {
    const outcomes = await Promise.allSettled(
      chosen.map(async (name) => {
        const log = [];
        const appDir = join(work, name);
        const t0 = Date.now();
        try {
          await prepare(name, APPS[name], appDir, tarballs, readme, log);
          const line = await checkApp(name, APPS[name], appDir, env, log);
          console.log(`${line} [${Math.round((Date.now() - t0) / 1000)} s]`);
          if (APPS[name].bundle) {
            const t1 = Date.now();
            await run(log, 'npm', ['install', '--save-dev', 'esbuild'], appDir);
            await run(log, 'npx', ['conveyor-nestjs', 'bundle', 'dist/main.js', '--out', 'dist/bundle'], appDir);
            const bundled = await checkApp(name, APPS[name], appDir, env, log, 'dist/bundle/main.js');
            console.log(`${bundled} [${Math.round((Date.now() - t1) / 1000)} s]`);
          }
        } catch (err) {
          console.error(`--- ${name} ---\n${log.join('\n')}\n--- ${name} failed: ${err?.message ?? err}`);
          throw err;
        }
      }),
    );
    const failed = chosen.filter((_, i) => outcomes[i].status === 'rejected');
    if (failed.length > 0) throw new Error(`failed: ${failed.join(', ')}`);
  } finally {
    await env.stop();
    removeWork();
  }
  console.log(`packaging test passed in ${Math.round((Date.now() - started) / 1000)} s`);
}

main().catch((err) => {
  console.error(`packaging test failed: ${err?.stack ?? err}`);
  removeWork();
  process.exit(1);
});
