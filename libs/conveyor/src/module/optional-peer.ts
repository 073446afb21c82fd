import { bundledPeer } from './bundle-markers';

const loaded = new Map<string, unknown>();

/** The peers appLoadedPeer looks for. */
export const APP_LOADED_PEERS = ['nestjs-pino'] as const;
export type AppLoadedPeer = (typeof APP_LOADED_PEERS)[number];

/** Where a peer would load from (`null`: not installed), resolved once. */
const files = new Map<string, string | null>();

/**
 * An optional peer dependency if the app has it installed, else undefined; looked up once. The core
 * of the runtime uses OpenTelemetry and nestjs-pino only when the app does, so a driver that uses
 * neither does not have to install them (health and metrics are subpath entry points instead).
 */
export function optionalPeer<T>(name: '@opentelemetry/api'): T | undefined {
  // One lookup once known: this runs once per log line (the active span's ids).
  let peer = loaded.get(name);
  if (peer === undefined) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional, so never a static import
      peer = require(name) as unknown;
    } catch {
      peer = NOT_INSTALLED;
    }
    loaded.set(name, peer);
  }
  return peer === NOT_INSTALLED ? undefined : (peer as T);
}

/**
 * An optional peer the app has loaded itself, else undefined; never loads it. For a peer that can
 * only matter once the app uses it (nestjs-pino's logger exists only after the app imported its
 * module): an app that has it installed but does not use it does not pay for loading it (nestjs-pino
 * brings pino and pino-http). Asked again on each call until the app has loaded it, which is one
 * lookup in Node's module cache (CommonJS peers imported from ESM are there too).
 */
export function appLoadedPeer<T>(name: AppLoadedPeer): T | undefined {
  const known = loaded.get(name);
  if (known !== undefined) return known === NOT_INSTALLED ? undefined : (known as T);
  // A bundled package is not in the module cache: the bundle registers it as the app loads it.
  const bundled = bundledPeer(name);
  if (bundled !== undefined) {
    loaded.set(name, bundled);
    return bundled as T;
  }
  let file = files.get(name);
  if (file === undefined) {
    try {
      file = require.resolve(name);
    } catch {
      file = null;
    }
    files.set(name, file);
  }
  if (file === null) return undefined;
  const module = require.cache[file];
  if (!module?.loaded) return undefined;
  loaded.set(name, module.exports);
  return module.exports as T;
}

const NOT_INSTALLED = Symbol('not installed');
