import { isDeepStrictEqual } from 'node:util';
import type { DriverResultEvent, Resource } from '../protocol';
import type { Confirmation } from './api-request';

/** Prefix of the metadata keys the pipeline engine writes at 0.6.x: `driverresults.<driver>`. */
const RESULT_KEY_PREFIX = 'driverresults.';

/**
 * The result an earlier pipeline step's driver left on the resource, or undefined when it has none
 * (yet). Reads both layouts: `metadata["driverresults.<driver>"]`, a JSON **string** at Conveyor
 * 0.6.x (contract §3.1), and `metadata.driverresults[<driver>]`, an object in newer upstream code
 * (contract §15). A value that is not a result (unparsable JSON, no boolean `success`) counts as none.
 */
export function previousResult(
  resource: Pick<Resource, 'metadata'>,
  driverName: string,
): DriverResultEvent | undefined {
  const metadata = resource.metadata ?? {};
  const nested = metadata.driverresults;
  const candidates = [
    metadata[`${RESULT_KEY_PREFIX}${driverName}`],
    typeof nested === 'object' && nested !== null
      ? (nested as Record<string, unknown>)[driverName]
      : undefined,
  ];
  for (const candidate of candidates) {
    const result = asResult(candidate, driverName);
    if (result) return result;
  }
  return undefined;
}

function asResult(value: unknown, driverName: string): DriverResultEvent | undefined {
  let parsed = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value) as unknown;
    } catch {
      return undefined;
    }
  }
  if (typeof parsed !== 'object' || parsed === null) return undefined;
  const result = parsed as Partial<DriverResultEvent>;
  if (typeof result.success !== 'boolean') return undefined;
  return {
    success: result.success,
    message: typeof result.message === 'string' ? result.message : '',
    data: result.data ?? null,
    driver: typeof result.driver === 'string' ? result.driver : driverName,
  };
}

/**
 * `next`'s metadata with the server-managed keys of `current` put back: a plain PUT stores the body's
 * metadata as it is, so the engine's `driverresults.*` would be lost unless echoed (contract §17
 * G17). `version` is left out: the server sets it. Keys `next` sets itself win.
 */
export function withServerMetadata(
  current: Pick<Resource, 'metadata'>,
  next: Pick<Resource, 'metadata'>,
): Record<string, unknown> {
  const kept = Object.entries(current.metadata ?? {}).filter(
    ([key]) => key.startsWith(RESULT_KEY_PREFIX) || key === 'driverresults',
  );
  const merged: Record<string, unknown> = { ...Object.fromEntries(kept), ...(next.metadata ?? {}) };
  delete merged.version;
  return merged;
}

/**
 * A resource's version as a number: the server keeps it as a decimal string in `metadata.version`
 * (`"1"` on create, raised by one on every `PUT`). `undefined` when the resource carries none (one
 * built locally, not read from the server) or it is not a whole number.
 *
 * @example
 * ```ts
 * const current = await client.getResource('widget', 'w1');
 * const version = current ? resourceVersion(current) : undefined; // 3, not "3"
 * ```
 */
export function resourceVersion(resource: Pick<Resource, 'metadata'>): number | undefined {
  return versionOf(resource.metadata);
}

/** `metadata.version` as the number the server counts with, or undefined when there is none. */
export function versionOf(metadata: Resource['metadata'] | undefined): number | undefined {
  const raw = metadata?.version;
  const text = typeof raw === 'number' ? String(raw) : raw;
  return typeof text === 'string' && /^\d+$/.test(text) ? Number(text) : undefined;
}

/** Whether `stored` holds what `sent` replaced it with: its spec, pipeline and metadata (the server's keys aside). */
function holdsUpdate(sent: Resource, stored: Resource): boolean {
  // Compared as JSON carries it: the server re-encodes the body (Go's key order, no `undefined`).
  const asJson = (value: unknown): unknown =>
    value === undefined ? null : JSON.parse(JSON.stringify(value));
  if (!isDeepStrictEqual(asJson(sent.spec), asJson(stored.spec))) return false;
  if ((sent.pipeline ?? '') !== (stored.pipeline ?? '')) return false;
  const sentMetadata = sent.metadata ?? {};
  const storedMetadata = stored.metadata ?? {};
  const isServerKey = (key: string) =>
    key === 'version' || key === 'driverresults' || key.startsWith(RESULT_KEY_PREFIX);
  const keys = new Set([...Object.keys(sentMetadata), ...Object.keys(storedMetadata)]);
  for (const key of keys) {
    // The engine may have written a result since (also over one the update echoed): not the update's to match.
    if (isServerKey(key)) continue;
    if (!isDeepStrictEqual(asJson(sentMetadata[key]), asJson(storedMetadata[key]))) return false;
  }
  return true;
}

/**
 * Whether a resource PUT that got no answer took effect, from the resource read back. The server
 * sets `version` to the stored one + 1 on every PUT and ignores the body's (contract §3.1, §10.1);
 * the engine's result writes leave it alone. So, with `baseVersion` (the version the PUT replaced):
 * still that version means not applied; a higher one holding the update means applied; a higher one
 * holding something else means another writer changed it. Without it only the content can tell: the
 * update held means applied (at worst a PUT that changed nothing is not repeated), anything else is
 * unknown (never sent again over a change it cannot rule out).
 */
export function confirmUpdate(
  sent: Resource,
  stored: Resource,
  baseVersion: number | undefined,
): Confirmation {
  const storedVersion = versionOf(stored.metadata);
  const known = baseVersion !== undefined && storedVersion !== undefined && storedVersion >= baseVersion;
  if (known && storedVersion === baseVersion) return 'not-applied';
  if (holdsUpdate(sent, stored)) return { applied: { status: 200, data: stored } };
  // No version to compare: other content may be this update not applied or another writer's
  // change, and sending it again could overwrite that change. The caller reads and decides.
  if (!known)
    return {
      conflict:
        'the resource holds other content and the update carried no version to tell whether it was ' +
        "applied, so it was not sent again over what may be another writer's change",
    };
  return {
    conflict:
      `the resource is at version ${storedVersion} (this update replaced version ${baseVersion}) with ` +
      "other content: another writer changed it, so it was not sent again over that writer's change",
  };
}
