import type { DriverResultEvent, Resource } from '../protocol';

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
