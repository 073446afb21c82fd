/**
 * What a `conveyor-nestjs bundle` build tells the library that it finds out from the file system
 * unbundled: a bundled package has no entry in Node's module cache and no `package.json` beside it.
 * Global symbols, because the bundle's own code sets them before the library runs.
 */

/** The app-loaded peers the bundle holds, by name, registered as the app loads them. */
export const BUNDLED_PEERS = Symbol.for('@conveyor-ci/nestjs:bundled-peers');

/** The version of `@conveyor-ci/nestjs` the bundle holds (the registry shows it). */
export const BUNDLED_LIBRARY_VERSION = Symbol.for('@conveyor-ci/nestjs:bundled-version');

type Marked = { [BUNDLED_PEERS]?: Record<string, unknown>; [BUNDLED_LIBRARY_VERSION]?: string };

export function bundledPeer(name: string): unknown {
  return (globalThis as Marked)[BUNDLED_PEERS]?.[name];
}

export function bundledLibraryVersion(): string | undefined {
  return (globalThis as Marked)[BUNDLED_LIBRARY_VERSION];
}
