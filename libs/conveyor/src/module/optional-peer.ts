const loaded = new Map<string, unknown>();

/**
 * An optional peer dependency if the app has it installed, else undefined; looked up once. The core
 * of the runtime uses OpenTelemetry and nestjs-pino only when the app does, so a driver that uses
 * neither does not have to install them (health and metrics are subpath entry points instead).
 */
export function optionalPeer<T>(name: '@opentelemetry/api' | 'nestjs-pino'): T | undefined {
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

const NOT_INSTALLED = Symbol('not installed');
