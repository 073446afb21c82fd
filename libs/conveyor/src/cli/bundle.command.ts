import { spawn } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { dirname, join, relative, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { CliIo } from './generate.command';
import { BUNDLED_LIBRARY_VERSION, BUNDLED_PEERS } from '../module/bundle-markers';
import { APP_LOADED_PEERS } from '../module/optional-peer';
import { DEFAULT_PRIME_MS, PRIME_ENV } from './code-cache.loader';

export const BUNDLE_USAGE = `Usage: conveyor-nestjs bundle ENTRY [--out DIR] [--external PACKAGE]... [--prime-ms MS | --no-prime] [--no-minify]

Builds a driver's production start-up: its compiled entry (e.g. dist/main.js, after nest build) and
everything it requires in one file, DIR/app.js, started by DIR/main.js with V8's code cache
DIR/app.js.cache. Run it with the Node.js and NODE_OPTIONS the driver runs with: V8 uses the cache
only with the build and flags that made it.
  --out DIR            where the files go (default: dist/bundle)
  --external PACKAGE   leave a package out of the bundle, required from node_modules at run time
                       (repeatable; packages that are not installed are always left out)
  --prime-ms MS        how long the priming start runs before the cache is written (default 3000)
  --no-prime           write no cache (main.js then compiles as plain Node would)
  --no-minify          keep app.js readable (it starts slower and takes more memory; class and
                       function names are kept either way, and app.js.map maps stack traces back
                       when Node runs with --enable-source-maps)

Priming starts the driver once with your environment, except CONVEYOR_NATS_URL (a closed loopback
port, so it never takes an event) and PORT (0: any free port).`;

/** The bundle runs on the Node.js that primes its cache: its syntax can be that version's. */
const NODE_TARGET = `node${process.versions.node.split('.')[0]}`;
/** Past the priming time: how long a priming start may take to write its cache and exit. */
const PRIME_GRACE_MS = 30_000;
/** Nothing listens on port 1 of loopback: the priming start keeps dialling and never consumes. */
const PRIME_NATS_URL = 'nats://127.0.0.1:1';

interface BundleArgs {
  entry: string;
  out: string;
  external: string[];
  primeMs: number | undefined;
  minify: boolean;
}

/** The part of esbuild's API the command uses (esbuild is an optional peer, loaded on use). */
interface Esbuild {
  build(options: Record<string, unknown>): Promise<{ warnings: { text: string }[] }>;
}

interface ResolveArgs {
  path: string;
  resolveDir: string;
  kind: string;
}

/**
 * `conveyor-nestjs bundle`. @returns the exit code: 0 done, 2 a usage error or a failure (the
 * entry does not build, the priming start wrote no cache).
 */
export async function bundleCommand(
  argv: string[],
  io: CliIo,
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  let args: BundleArgs | 'help';
  try {
    args = parse(argv);
  } catch (err) {
    io.err(`${(err as Error).message}\n\n${BUNDLE_USAGE}`);
    return 2;
  }
  if (args === 'help') {
    io.out(BUNDLE_USAGE);
    return 0;
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- an optional peer, loaded on use
    const esbuild = require('esbuild') as Esbuild;
    await mkdir(args.out, { recursive: true });
    const appFile = join(args.out, 'app.js');
    const mainFile = join(args.out, 'main.js');
    const cacheFile = join(args.out, 'app.js.cache');
    // A cache of the previous app.js: V8 would refuse it (the source differs), but it is stale.
    await rm(cacheFile, { force: true });
    for (const warning of await buildApp(esbuild, args, appFile)) io.err(`warning: ${warning}`);
    await buildMain(esbuild, mainFile);
    // In a package with "type": "module" (a Nest 12 ESM app), main.js would load as ESM.
    await writeFile(join(args.out, 'package.json'), '{ "type": "commonjs" }\n');
    const sizes = [`app.js ${mib(appFile)}`, 'main.js'];
    if (args.primeMs !== undefined) {
      await prime(mainFile, cacheFile, args.primeMs, env);
      sizes.push(`app.js.cache ${mib(cacheFile)} (primed for ${args.primeMs} ms)`);
    }
    io.out(`${args.out}: ${sizes.join(', ')}; start it with: node ${join(args.out, 'main.js')}`);
    return 0;
  } catch (err) {
    io.err(`conveyor-nestjs bundle: ${(err as Error).message}`);
    return 2;
  }
}

function parse(argv: string[]): BundleArgs | 'help' {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      out: { type: 'string' },
      external: { type: 'string', multiple: true },
      'prime-ms': { type: 'string' },
      'no-prime': { type: 'boolean' },
      'no-minify': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) return 'help';
  if (positionals.length !== 1)
    throw new Error('give one ENTRY: the compiled entry point, e.g. dist/main.js');
  const entry = resolve(positionals[0]);
  if (!existsSync(entry))
    throw new Error(`${positionals[0]} does not exist (build the driver first: nest build)`);
  if (/\.[cm]?tsx?$/.test(entry)) {
    throw new Error(
      `${positionals[0]} is TypeScript: bundle the compiled entry (e.g. dist/main.js after nest build)`,
    );
  }
  if (values['no-prime'] && values['prime-ms'] !== undefined)
    throw new Error('--prime-ms and --no-prime exclude each other');
  let primeMs: number | undefined = DEFAULT_PRIME_MS;
  if (values['no-prime']) primeMs = undefined;
  else if (values['prime-ms'] !== undefined) {
    primeMs = Number(values['prime-ms']);
    if (!Number.isInteger(primeMs) || primeMs < 0 || primeMs > 600_000) {
      throw new Error(`--prime-ms ${values['prime-ms']}: a whole number of milliseconds, 0 to 600000`);
    }
  }
  const out = resolve(values.out ?? join('dist', 'bundle'));
  if ([join(out, 'app.js'), join(out, 'main.js')].includes(entry)) {
    throw new Error(
      `--out ${values.out ?? join('dist', 'bundle')} would overwrite ${positionals[0]}: bundle into a directory of its own`,
    );
  }
  return {
    entry,
    out,
    external: values.external ?? [],
    primeMs,
    minify: !values['no-minify'],
  };
}

async function buildApp(esbuild: Esbuild, args: BundleArgs, appFile: string): Promise<string[]> {
  const result = await esbuild
    .build({
      // The code cache needs a script, so the bundle is CommonJS even for an ESM app; its
      // `import.meta` becomes the bundle file's own (packages resolve from beside it, as before).
      banner: {
        js: `var ${IMPORT_META_URL} = require('node:url').pathToFileURL(__filename).href;${versionMarker(dirname(args.entry))}`,
      },
      define: {
        'import.meta.url': IMPORT_META_URL,
        'import.meta.filename': '__filename',
        'import.meta.dirname': '__dirname',
      },
      entryPoints: [args.entry],
      outfile: appFile,
      bundle: true,
      platform: 'node',
      format: 'cjs',
      target: NODE_TARGET,
      // Nest names providers and reports errors by class name; minified names would break both.
      keepNames: true,
      minify: args.minify,
      sourcemap: 'linked',
      sourcesContent: false,
      external: [...args.external, '*.node'],
      plugins: [leaveAbsentPackagesOut(), registerAppLoadedPeers(dirname(args.entry))],
      logLevel: 'silent',
    })
    .catch((err: EsbuildFailure) => {
      throw new Error(describeBuildErrors(err));
    });
  return result.warnings.map((w) => w.text);
}

const IMPORT_META_URL = '__conveyorImportMetaUrl';

/** The bundled library's version, for the registry: no `package.json` of it is beside the bundle. */
function versionMarker(entryDir: string): string {
  try {
    const file = require.resolve('@conveyor-ci/nestjs/package.json', { paths: [entryDir] });
    const { version } = JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown };
    if (typeof version !== 'string') return '';
    return `\nglobalThis[Symbol.for(${JSON.stringify(BUNDLED_LIBRARY_VERSION.description)})] = ${JSON.stringify(version)};`;
  } catch {
    return '';
  }
}

interface EsbuildFailure extends Error {
  errors?: { text: string; location?: { file: string; line: number; column: number } | null }[];
}

/** esbuild's errors with where they are, and what to do about the one a Nest ESM app meets. */
function describeBuildErrors(err: EsbuildFailure): string {
  const errors = err.errors ?? [];
  if (errors.length === 0) return err.message;
  const lines = errors.map((e) =>
    e.location ? `${resolve(e.location.file)}:${e.location.line}:${e.location.column}: ${e.text}` : e.text,
  );
  if (errors.some((e) => /top-level await/i.test(e.text))) {
    lines.push(
      'the bundle is CommonJS (the code cache needs a script): start the app without top-level await, ' +
        'e.g. `bootstrap().catch((err) => { console.error(err); process.exit(1); });`',
    );
  }
  return `the driver does not bundle:\n${lines.join('\n')}`;
}

/**
 * Nest, nats.js and this library require optional packages inside try/catch (`@nestjs/websockets`,
 * `class-validator`, kafkajs, `@opentelemetry/api`...), so that an app without them still starts.
 * A bundler resolving every literal require would refuse the build; such a package is left as a
 * run-time require instead, which fails exactly as it does unbundled.
 */
function leaveAbsentPackagesOut() {
  const builtins = new Set(builtinModules);
  return {
    name: 'conveyor-leave-absent-packages-out',
    setup(build: { onResolve(options: { filter: RegExp }, cb: (args: ResolveArgs) => unknown): void }) {
      build.onResolve({ filter: /^[^./]/ }, (args: ResolveArgs) => {
        if (args.path.startsWith('node:') || builtins.has(args.path)) return undefined;
        try {
          require.resolve(args.path, { paths: [args.resolveDir] });
          return undefined;
        } catch {
          return { path: args.path, external: true };
        }
      });
    },
  };
}

/**
 * The library writes its run lines through the app's nestjs-pino when the app loaded it, which it
 * reads in Node's module cache; a bundled package is not there. Each such peer's entry file
 * registers its exports where the library also looks (BUNDLED_PEERS), when the app loads it.
 */
function registerAppLoadedPeers(entryDir: string) {
  const files = new Map<string, string>();
  for (const name of APP_LOADED_PEERS) {
    try {
      files.set(require.resolve(name, { paths: [entryDir] }), name);
    } catch {
      /* not installed: nothing to register */
    }
  }
  const key = `Symbol.for(${JSON.stringify(BUNDLED_PEERS.description)})`;
  return {
    name: 'conveyor-register-app-loaded-peers',
    setup(build: {
      onLoad(
        options: { filter: RegExp },
        cb: (args: { path: string }) => Promise<{ contents: string; loader: string } | undefined>,
      ): void;
    }) {
      build.onLoad({ filter: /\.js$/ }, async (args) => {
        const name = files.get(args.path);
        if (name === undefined) return undefined;
        const source = await readFile(args.path, 'utf8');
        return {
          contents: `${source}\n;(globalThis[${key}] ??= {})[${JSON.stringify(name)}] = module.exports;\n`,
          loader: 'js',
        };
      });
    },
  };
}

async function buildMain(esbuild: Esbuild, mainFile: string): Promise<void> {
  const loader = require.resolve('./code-cache.loader');
  await esbuild.build({
    stdin: {
      contents:
        `const { join } = require('node:path');\n` +
        `require(${JSON.stringify(loader)}).runBundle(join(__dirname, 'app.js'), join(__dirname, 'app.js.cache'));\n`,
      resolveDir: dirname(loader),
      loader: 'js',
    },
    outfile: mainFile,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: NODE_TARGET,
    banner: { js: '// Generated by `conveyor-nestjs bundle`: starts app.js with its code cache.' },
    logLevel: 'silent',
  });
}

/** Starts the bundle once, as production would, and waits for the cache it writes on the way out. */
async function prime(
  mainFile: string,
  cacheFile: string,
  primeMs: number,
  env: NodeJS.ProcessEnv,
): Promise<void> {
  const child = spawn(process.execPath, [mainFile], {
    env: { ...env, [PRIME_ENV]: String(primeMs), CONVEYOR_NATS_URL: PRIME_NATS_URL, PORT: '0' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-4000)));
  const code = await new Promise<number | string | null>((done, fail) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`the priming start did not exit within ${primeMs + PRIME_GRACE_MS} ms`));
    }, primeMs + PRIME_GRACE_MS);
    child.once('error', (err) => {
      clearTimeout(timer);
      fail(err);
    });
    child.once('exit', (exitCode, signal) => {
      clearTimeout(timer);
      done(exitCode ?? signal);
    });
  });
  if (!existsSync(cacheFile)) {
    throw new Error(
      `the priming start (node ${relative(process.cwd(), mainFile)}) exited with ${code} and wrote no cache:\n${stderr}`,
    );
  }
}

function mib(file: string): string {
  return `${(statSync(file).size / 1024 / 1024).toFixed(1)} MiB`;
}
