/**
 * The entry point `conveyor-nestjs bundle` writes beside a driver's bundle (`main.js` beside
 * `app.js`). It runs the bundle as a CommonJS module compiled with V8's code cache from
 * `app.js.cache`, so a cold start skips compiling the functions the cache holds. It only requires
 * Node's built-ins: the command bundles it on its own.
 *
 * Why a cache and not only the bundle: one file saves Node's module resolution, but V8 still has
 * to parse and compile every function that runs at start (Nest's scanner, rxjs, nats.js); the cache
 * holds the compiled code of the functions that ran while it was primed.
 */
import { isAscii } from 'node:buffer';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import Module from 'node:module';
import { dirname } from 'node:path';
import { Script, constants as vmConstants, type ScriptOptions } from 'node:vm';

/** Set by `conveyor-nestjs bundle` when it primes the cache: run this long, write the cache, exit. */
export const PRIME_ENV = 'CONVEYOR_CODE_CACHE_PRIME_MS';
/** How long a priming start runs when not told (`--prime-ms`). */
export const DEFAULT_PRIME_MS = 3000;
/** `off`: compile without the cache (to compare, or to rule the cache out). */
export const CODE_CACHE_ENV = 'CONVEYOR_CODE_CACHE';

interface CommonJsModule {
  exports: unknown;
  filename: string;
  paths: string[];
  loaded: boolean;
}

interface ModuleInternals {
  new (id: string, parent?: unknown): CommonJsModule;
  wrap(source: string): string;
  _nodeModulePaths(from: string): string[];
}

/**
 * Compiles and runs `appFile` as the process's main module, with the code cache at `cacheFile`
 * when it holds code for this V8 build.
 */
export function runBundle(appFile: string, cacheFile: string, env: NodeJS.ProcessEnv = process.env): void {
  const useCache = env[CODE_CACHE_ENV] !== 'off';
  const cachedData = useCache && existsSync(cacheFile) ? readFileSync(cacheFile) : undefined;
  const options: ScriptOptions = { filename: appFile, cachedData };
  // Without this callback an `import()` in the bundle (an ESM-only package left external) throws
  // ERR_VM_DYNAMIC_IMPORT_CALLBACK_MISSING; the constant exists from Node 20.12 on.
  const defaultLoader = (vmConstants as unknown as { USE_MAIN_CONTEXT_DEFAULT_LOADER?: symbol } | undefined)
    ?.USE_MAIN_CONTEXT_DEFAULT_LOADER;
  if (defaultLoader)
    (options as { importModuleDynamically?: unknown }).importModuleDynamically = defaultLoader;
  const CjsModule = Module as unknown as ModuleInternals;
  const script = new Script(CjsModule.wrap(sourceOf(appFile)), options);
  if (cachedData && script.cachedDataRejected) {
    // V8 refuses a cache made by another V8 build or with other flags: the start is correct but
    // slow, and it stays so until the bundle is primed again with this Node.
    process.emitWarning(
      `${cacheFile} was made by another Node.js build or with other V8 flags (this is ${process.version}` +
        `${process.execArgv.length ? ` ${process.execArgv.join(' ')}` : ''}) and is ignored: run ` +
        '`conveyor-nestjs bundle` again with the Node.js and NODE_OPTIONS the driver runs with',
      { code: 'CONVEYOR_CODE_CACHE_REJECTED' },
    );
  }
  const primeMs = env[PRIME_ENV];
  if (primeMs !== undefined) primeThenExit(script, cacheFile, Number(primeMs));

  const app = new CjsModule(appFile, module);
  app.filename = appFile;
  app.paths = CjsModule._nodeModulePaths(dirname(appFile));
  const wrapper = script.runInThisContext() as (
    exports: unknown,
    require: NodeJS.Require,
    module: CommonJsModule,
    filename: string,
    dirname: string,
  ) => void;
  // Node's own require for a module at appFile: resolve() with its options, cache, main.
  const appRequire = Module.createRequire(appFile);
  wrapper.call(app.exports, app.exports, appRequire, app, appFile, dirname(appFile));
  app.loaded = true;
}

/**
 * The bundle's text. esbuild writes ASCII (it escapes what it can), and decoding ASCII as latin1 is
 * the same text at about half the cost of UTF-8 decoding: 7 ms of a 2.7 MiB bundle's cold start.
 */
function sourceOf(file: string): string {
  const bytes = readFileSync(file);
  return isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
}

/**
 * Priming: the driver runs as it would in production for `primeMs` (or until it exits on its own,
 * e.g. refusing a configuration), then the code of every function it ran so far goes to the cache.
 */
function primeThenExit(script: Script, cacheFile: string, primeMs: number): void {
  let written = false;
  const write = () => {
    if (written) return;
    written = true;
    // Write then rename: a driver starting meanwhile reads the old cache or the new, never half.
    const partial = `${cacheFile}.${process.pid}.tmp`;
    writeFileSync(partial, script.createCachedData());
    renameSync(partial, cacheFile);
  };
  process.once('exit', write);
  setTimeout(
    () => {
      write();
      process.exit(0);
    },
    Number.isFinite(primeMs) && primeMs >= 0 ? primeMs : DEFAULT_PRIME_MS,
  );
}
