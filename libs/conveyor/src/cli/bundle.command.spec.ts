import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bundleCommand } from './bundle.command';

function capture() {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

let dir: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'bundle-command-'));
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('conveyor-nestjs bundle: arguments', () => {
  it.each([
    [[], 'give one ENTRY'],
    [['missing.js'], 'missing.js does not exist (build the driver first: nest build)'],
    [['--prime-ms', '1.5', 'ENTRY'], '--prime-ms 1.5: a whole number of milliseconds'],
    [['--prime-ms', '100', '--no-prime', 'ENTRY'], '--prime-ms and --no-prime exclude each other'],
    [['--minify', 'ENTRY'], "Unknown option '--minify'"],
  ])('%j is refused with a clear message and exit code 2', async (argv, message) => {
    const entry = join(dir, 'entry.js');
    writeFileSync(entry, '');
    const { io, err } = capture();
    const code = await bundleCommand(
      argv.map((a) => (a === 'ENTRY' ? entry : a)),
      io,
      {},
    );
    expect(code).toBe(2);
    expect(err.join('\n')).toContain(message);
    expect(err.join('\n')).toContain('Usage: conveyor-nestjs bundle');
  });

  it('refuses a TypeScript entry: it bundles what nest build compiled', async () => {
    const entry = join(dir, 'main.ts');
    writeFileSync(entry, '');
    const { io, err } = capture();
    expect(await bundleCommand([entry], io, {})).toBe(2);
    expect(err.join('\n')).toContain('is TypeScript: bundle the compiled entry');
  });

  it('refuses an output directory where its files would overwrite the entry', async () => {
    const entry = join(dir, 'main.js');
    writeFileSync(entry, 'console.log(1);');
    const { io, err } = capture();
    expect(await bundleCommand([entry, '--out', dir], io, {})).toBe(2);
    expect(err.join('\n')).toContain(`would overwrite ${entry}: bundle into a directory of its own`);
    expect(readFileSync(entry, 'utf8')).toBe('console.log(1);');
  });

  it('prints its usage on --help', async () => {
    const { io, out } = capture();
    expect(await bundleCommand(['--help'], io, {})).toBe(0);
    expect(out.join('\n')).toContain('--no-prime');
  });
});

describe('conveyor-nestjs bundle: a real build', () => {
  it('bundles, leaves an absent optional package to run time, primes the cache and runs from it', async () => {
    const entry = join(dir, 'entry.js');
    // Nest's way with optional packages: a literal require inside try/catch. The bundle must still
    // build, and the require must fail at run time exactly as it does unbundled.
    writeFileSync(join(dir, 'helper.js'), 'module.exports = (n) => n * 2; // compiled during priming');
    writeFileSync(
      entry,
      [
        "const double = require('./helper');",
        'let optional = "present";',
        "try { require('conveyor-not-installed-optional-package'); } catch { optional = 'absent'; }",
        'console.log(JSON.stringify({ double: double(21), optional, primed: process.env.CONVEYOR_CODE_CACHE_PRIME_MS ?? null, nats: process.env.CONVEYOR_NATS_URL ?? null }));',
        'const timer = setInterval(() => undefined, 1000);',
        'if (!process.env.CONVEYOR_CODE_CACHE_PRIME_MS) clearInterval(timer);',
      ].join('\n'),
    );
    const out = join(dir, 'out');
    const { io, out: said, err } = capture();
    const code = await bundleCommand([entry, '--out', out, '--prime-ms', '200'], io, {
      PATH: process.env.PATH,
      CONVEYOR_NATS_URL: 'nats://production.invalid:4222',
    });
    expect(err).toEqual([]);
    expect(code).toBe(0);
    expect(said.join('\n')).toMatch(/app\.js\.cache .* \(primed for 200 ms\)/);
    expect(JSON.parse(readFileSync(join(out, 'package.json'), 'utf8'))).toEqual({ type: 'commonjs' });
    expect(readFileSync(join(out, 'app.js'), 'utf8')).toContain('conveyor-not-installed-optional-package');

    const run = spawnSync(process.execPath, [join(out, 'main.js')], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
      timeout: 20_000,
    });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual({ double: 42, optional: 'absent', primed: null, nats: null });

    // A cache V8 refuses (another build, other flags, or damaged) is named, and the driver still starts.
    writeFileSync(join(out, 'app.js.cache'), Buffer.alloc(4096, 7));
    const refused = spawnSync(process.execPath, [join(out, 'main.js')], {
      encoding: 'utf8',
      env: { PATH: process.env.PATH },
      timeout: 20_000,
    });
    expect(refused.stderr).toContain('[CONVEYOR_CODE_CACHE_REJECTED]');
    expect(JSON.parse(refused.stdout)).toMatchObject({ double: 42 });
  }, 60_000);

  it("bundles an ESM entry: import.meta is the bundle file's own", async () => {
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }');
    writeFileSync(
      join(dir, 'util.js'),
      'export const where = (url) => new URL(url).pathname.split("/").pop();',
    );
    const entry = join(dir, 'main.js');
    writeFileSync(
      entry,
      "import { where } from './util.js';\nconsole.log(where(import.meta.url), typeof import.meta.dirname, `caf\u00e9`);\n",
    );
    const out = join(dir, 'out');
    const { io, err } = capture();
    expect(await bundleCommand([entry, '--out', out, '--no-prime'], io, {})).toBe(0);
    expect(err).toEqual([]);
    const run = spawnSync(process.execPath, [join(out, 'main.js')], { encoding: 'utf8', timeout: 20_000 });
    expect(run.stderr).toBe('');
    // A template literal keeps its non-ASCII text: the bundle is not ASCII and is read as UTF-8.
    expect(run.stdout.trim()).toBe('app.js string caf\u00e9');
  }, 30_000);

  it("marks the bundled library's version (no package.json of it is beside the bundle)", async () => {
    const pkgDir = join(dir, 'node_modules', '@conveyor-ci', 'nestjs');
    mkdirSync(pkgDir, { recursive: true });
    writeFileSync(join(pkgDir, 'package.json'), '{ "name": "@conveyor-ci/nestjs", "version": "9.8.7" }');
    const entry = join(dir, 'entry.js');
    writeFileSync(entry, "console.log(require('./version')());");
    writeFileSync(
      join(dir, 'version.js'),
      `module.exports = () => require(${JSON.stringify(require.resolve('../module/bundle-markers'))}).bundledLibraryVersion();`,
    );
    const out = join(dir, 'out');
    const { io, err } = capture();
    expect(await bundleCommand([entry, '--out', out, '--no-prime'], io, {})).toBe(0);
    expect(err).toEqual([]);
    const run = spawnSync(process.execPath, [join(out, 'main.js')], { encoding: 'utf8', timeout: 20_000 });
    expect(run.stdout.trim()).toBe('9.8.7');
  }, 30_000);

  it('refuses top-level await with where it is and how to start without it', async () => {
    writeFileSync(join(dir, 'package.json'), '{ "type": "module" }');
    const entry = join(dir, 'main.js');
    writeFileSync(entry, 'async function bootstrap() {}\nawait bootstrap();\n');
    const { io, err } = capture();
    expect(await bundleCommand([entry, '--out', join(dir, 'out'), '--no-prime'], io, {})).toBe(2);
    const said = err.join('\n');
    expect(said).toContain(
      `${entry}:2:0: Top-level await is currently not supported with the "cjs" output format`,
    );
    expect(said).toContain('start the app without top-level await');
  }, 30_000);
});
