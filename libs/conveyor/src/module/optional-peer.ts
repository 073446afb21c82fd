const loaded = new Map<string, unknown>();

/**
 * An optional peer dependency if the app has it installed, else undefined; looked up once. The core
 * of the runtime uses OpenTelemetry and nestjs-pino only when the app does, so a driver that uses
 * neither does not have to install them (health and metrics are subpath entry points instead).
 */
export function optionalPeer<T>(name: '@opentelemetry/api' | 'nestjs-pino'): T | undefined {
  if (!loaded.has(name)) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports -- optional, so never a static import
      loaded.set(name, require(name));
    } catch {
      loaded.set(name, undefined);
    }
  }
  return loaded.get(name) as T | undefined;
}
