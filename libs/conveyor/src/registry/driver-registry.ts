import type { KV, KvEntry, NatsConnection } from 'nats';
import { abortable } from '../util/abortable';
import { heartbeatEveryMs } from './driver-presence';
import {
  DEFAULT_REGISTRY_TTL_MS,
  DRIVER_REGISTRY_BUCKET,
  LiveDriverInstance,
  parseRegistryEntry,
} from './driver-registry.entry';

/** The longest opening the bucket or listing it may take. */
const REGISTRY_READ_MS = 5_000;

/**
 * Reads the driver registry: which replicas of which drivers are alive now. For consoles, for
 * `npm run dev` and for any tool with a NATS connection (it only reads; the transport writes).
 * An entry counts as alive until its TTL passes since its last write, whether or not the server
 * has swept it yet: an expiry leaves no trace in a watch, so the reader ages entries itself.
 * @example
 * ```ts
 * const registry = new DriverRegistry(nc);
 * for (const d of await registry.list()) console.log(d.driver, d.host, d.pid, d.in_flight);
 * ```
 */
export class DriverRegistry {
  private bucket?: Promise<{ kv: KV; ttlMs: number }>;

  constructor(private readonly nc: NatsConnection) {}

  /**
   * Every live replica, sorted by driver then start time. Empty when the bucket does not exist
   * yet (no runtime wrote to it).
   * @throws when NATS does not answer within seconds.
   */
  async list(): Promise<LiveDriverInstance[]> {
    const listed = await abortable(
      async () => {
        const opened = await this.open();
        if (!opened) return [];
        const found: LiveDriverInstance[] = [];
        for (const key of await collect(await opened.kv.keys())) {
          const entry = await opened.kv.get(key);
          const live = entry && liveInstance(entry, opened.ttlMs);
          if (live) found.push(live);
        }
        return sortInstances(found);
      },
      undefined,
      REGISTRY_READ_MS,
    );
    if (listed.ended !== 'done')
      throw new Error(`the ${DRIVER_REGISTRY_BUCKET} bucket did not answer in time`);
    return listed.value;
  }

  /** Live replicas of `driver`. */
  async instancesOf(driver: string): Promise<LiveDriverInstance[]> {
    return (await this.list()).filter((instance) => instance.driver === driver);
  }

  /**
   * The live replicas, as a new list each time it changes (an entry written, deleted, or aged out),
   * the first once the current entries are read, until `signal` aborts. Waits for the bucket when
   * it does not exist yet.
   */
  async *watch(signal: AbortSignal): AsyncGenerator<LiveDriverInstance[]> {
    let opened: { kv: KV; ttlMs: number } | undefined;
    while (!signal.aborted && !(opened = await this.open().catch(() => undefined))) {
      this.bucket = undefined;
      await new Promise((resolve) => setTimeout(resolve, 1_000).unref());
    }
    if (!opened || signal.aborted) return;
    const { kv, ttlMs } = opened;
    const live = new Map<string, LiveDriverInstance>();
    const pending: (() => void)[] = [];
    let changed = false;
    let initialized = false;
    const wake = () => pending.splice(0).forEach((resolve) => resolve());
    const watch = await kv.watch({
      key: '>',
      initializedFn: () => {
        // The current entries are read (also when there are none): the first list is complete.
        initialized = true;
        changed = true;
        wake();
      },
    });
    const stop = () => {
      watch.stop();
      wake();
    };
    signal.addEventListener('abort', stop, { once: true });
    // Ages entries out between writes: an expiry is invisible to the watch.
    const sweep = setInterval(() => {
      const now = Date.now();
      for (const [key, instance] of live)
        if (Date.parse(instance.expires_at) <= now) {
          live.delete(key);
          changed = true;
        }
      if (changed) wake();
    }, heartbeatEveryMs(ttlMs));
    sweep.unref();
    let ended = false;
    void (async () => {
      for await (const entry of watch) {
        const instance = entry.operation === 'PUT' ? liveInstance(entry, ttlMs) : undefined;
        if (instance) live.set(entry.key, instance);
        else live.delete(entry.key);
        changed = true;
        if (initialized) wake();
      }
    })()
      .catch(() => undefined)
      .finally(() => {
        // Stopped, or the connection closed: nothing more will come.
        ended = true;
        wake();
      });
    try {
      while (!signal.aborted && !ended) {
        if (changed && initialized) {
          changed = false;
          yield sortInstances([...live.values()]);
          continue;
        }
        // No await between the check above and this push: a wake cannot slip between them.
        await new Promise<void>((resolve) => pending.push(resolve));
      }
    } finally {
      clearInterval(sweep);
      signal.removeEventListener('abort', stop);
      watch.stop();
    }
  }

  private open(): Promise<{ kv: KV; ttlMs: number } | undefined> {
    this.bucket ??= (async () => {
      // Bind only: a reader never creates the bucket (that would fix its TTL for the writers).
      const kv = await this.nc.jetstream().views.kv(DRIVER_REGISTRY_BUCKET, { bindOnly: true });
      return { kv, ttlMs: (await kv.status()).ttl || DEFAULT_REGISTRY_TTL_MS };
    })();
    const opened = this.bucket.catch((err: unknown) => {
      this.bucket = undefined;
      // No bucket yet: nobody registered, which is an answer, not an error.
      if (/not found/i.test(String((err as Error)?.message))) return undefined;
      throw err;
    });
    return opened;
  }
}

/** `entry` as a live instance, or undefined when foreign or past its TTL. */
function liveInstance(entry: KvEntry, ttlMs: number): LiveDriverInstance | undefined {
  if (entry.operation !== 'PUT') return undefined;
  const parsed = parseRegistryEntry(entry.value);
  const expiresAt = entry.created.getTime() + ttlMs;
  if (!parsed || expiresAt <= Date.now()) return undefined;
  return {
    ...parsed,
    seen_at: entry.created.toISOString(),
    expires_at: new Date(expiresAt).toISOString(),
  };
}

function sortInstances(list: LiveDriverInstance[]): LiveDriverInstance[] {
  return list.sort((a, b) =>
    a.driver === b.driver ? a.started_at.localeCompare(b.started_at) : a.driver < b.driver ? -1 : 1,
  );
}

async function collect(keys: AsyncIterable<string>): Promise<string[]> {
  const all: string[] = [];
  for await (const key of keys) all.push(key);
  return all;
}
