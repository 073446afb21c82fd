import type { LoggerService } from '@nestjs/common';
import { KvWatchInclude } from 'nats';
import type { KV, KvEntry, NatsConnection } from 'nats';
import { RUN_LEASES_BUCKET, ResourceLeaseHolder, encodeGoJson, isSubjectToken } from '../protocol';
import { abortable } from '../util/abortable';

/** A lease this process holds: renewed until released. */
export interface ResourceLease {
  /** Stops renewing and deletes the entry (if still ours). Never rejects; bounded in time. */
  release(): Promise<void>;
}

export type LeaseAttempt =
  | { kind: 'acquired'; lease: ResourceLease }
  /**
   * Another run holds it. `holder` is undefined when the entry is foreign (another tool or version
   * wrote what this one cannot read: nobody to cancel, it frees itself by the bucket's TTL), or
   * when other replicas' quick runs took it first each time (`contended`: ask again soon).
   */
  | { kind: 'held'; holder?: ResourceLeaseHolder; contended?: true; expiresAt: number };

/** Where leases live: the `conveyor-run-leases` KV bucket, or memory in the testing module. */
export interface LeaseStore {
  /** Takes the lease of `key` for `holder`. @throws when the store cannot answer (bucket unreachable). */
  acquire(key: string, holder: ResourceLeaseHolder): Promise<LeaseAttempt>;
  /**
   * Resolves when the lease of `key` may have freed: released, or past `expiresAt` (a holder that
   * died stops renewing), or `signal` aborted. Never rejects; take the lease again to know.
   */
  waitForRelease(key: string, expiresAt: number, signal: AbortSignal): Promise<void>;
  /**
   * Deliveries of message `streamSeq` to `driver` that were nak'd only to wait for a lease: no
   * attempt of its handler. Kept beside the leases, so a replica the message comes back to knows.
   */
  waitsOf(driver: string, streamSeq: number): Promise<number>;
  /** One more such delivery (the message is about to be nak'd to wait). */
  countWait(driver: string, streamSeq: number): Promise<void>;
  /** The message ran: its waits are forgotten. */
  forgetWaits(driver: string, streamSeq: number): Promise<void>;
}

/** The key of a message's wait count: `=` is in no base64url lease key, so the two never meet. */
function waitsKey(driver: string, streamSeq: number): string {
  return `=waits.${Buffer.from(driver, 'utf8').toString('base64url')}.${streamSeq}`;
}

/** The longest any single lease operation may take (the JetStream API's own timeout is 5 s). */
const LEASE_OP_MS = 5000;

/**
 * Leases in JetStream KV. `create` succeeds only when no live entry exists, which makes the bucket
 * the one arbiter across replicas; a holder renews its entry every third of the bucket's TTL (each
 * put restarts the entry's age), so a replica that dies stops renewing and its lease expires.
 *
 * The TTL that counts is the bucket's own: `views.kv(bucket, { ttl })` never changes an existing
 * bucket, so whoever created it first decided it. It is read when the bucket is opened and drives
 * renewal; a different `leaseTtlMs` is announced once.
 */
export class KvLeaseStore implements LeaseStore {
  private kv?: Promise<{ kv: KV; ttlMs: number }>;

  constructor(
    private nc: NatsConnection,
    private readonly ttlMs: number,
    private readonly log: LoggerService,
  ) {}

  /**
   * A new connection after a redial: leases held on the old one renew over this one from their
   * next renewal on (a revision is the stream's, not the connection's).
   */
  use(nc: NatsConnection): void {
    if (nc === this.nc) return;
    this.nc = nc;
    this.kv = undefined;
  }

  async acquire(key: string, holder: ResourceLeaseHolder): Promise<LeaseAttempt> {
    const { kv, ttlMs } = await this.bucket();
    const bytes = encodeGoJson(holder);
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const revision = await kv.create(key, bytes);
        return { kind: 'acquired', lease: this.renewed(key, holder, revision) };
      } catch (err) {
        // Anything but "someone wrote first" is the store refusing (full, sealed, no permission).
        if (!lostTheRace(err))
          throw new Error(`the ${RUN_LEASES_BUCKET} bucket refused it: ${(err as Error)?.message ?? err}`);
        const current = await kv.get(key);
        // Freed (a quick run released it) between the create and the get: try again.
        if (!current || current.operation !== 'PUT') continue;
        // Even our own message's entry (a redelivery after its run here died) is left to expire:
        // its holder may still be running on a replica that lost the message, not dead.
        return { kind: 'held', holder: leaseHolderOf(current), expiresAt: expiryOf(current, ttlMs) };
      }
    }
    // Quick runs of other replicas took and freed it under us each time: busy, not broken.
    return { kind: 'held', contended: true, expiresAt: Date.now() + CONTENDED_RETRY_MS };
  }

  async waitForRelease(key: string, expiresAt: number, signal: AbortSignal): Promise<void> {
    let kv: KV;
    try {
      ({ kv } = await this.bucket());
    } catch {
      return; // acquire will say what is wrong
    }
    // A delete (a release) ends the wait early; an expiry by TTL leaves no trace in a watch, so the
    // holder's expiry bounds it.
    const wait = new AbortController();
    const stop = () => wait.abort();
    signal.addEventListener('abort', stop, { once: true });
    try {
      const watching = (async () => {
        const watch = await kv.watch({ key, include: KvWatchInclude.UpdatesOnly });
        wait.signal.addEventListener('abort', () => watch.stop(), { once: true });
        if (wait.signal.aborted) watch.stop();
        for await (const entry of watch) if (entry.operation !== 'PUT') break;
      })();
      await abortable(watching, wait.signal, Math.max(0, expiresAt - Date.now()) + 1).catch(() => undefined);
    } finally {
      signal.removeEventListener('abort', stop);
      wait.abort();
    }
  }

  async waitsOf(driver: string, streamSeq: number): Promise<number> {
    const { kv } = await this.bucket();
    const entry = await kv.get(waitsKey(driver, streamSeq));
    const count = entry?.operation === 'PUT' ? Number(entry.string()) : 0;
    // Another tool's value is no count: no waits known.
    return Number.isSafeInteger(count) && count > 0 ? count : 0;
  }

  async countWait(driver: string, streamSeq: number): Promise<void> {
    const { kv } = await this.bucket();
    // Each put restarts the entry's age: it lives while the message keeps waiting (naks every second).
    await kv.put(waitsKey(driver, streamSeq), String((await this.waitsOf(driver, streamSeq)) + 1));
  }

  async forgetWaits(driver: string, streamSeq: number): Promise<void> {
    const { kv } = await this.bucket();
    await kv.delete(waitsKey(driver, streamSeq));
  }

  private bucket(): Promise<{ kv: KV; ttlMs: number }> {
    this.kv ??= (async () => {
      const kv = await this.nc.jetstream().views.kv(RUN_LEASES_BUCKET, { ttl: this.ttlMs, history: 1 });
      const ttlMs = (await kv.status()).ttl || this.ttlMs;
      if (ttlMs !== this.ttlMs) {
        this.log.warn(
          `KV bucket ${RUN_LEASES_BUCKET} has a TTL of ${ttlMs} ms, not leaseTtlMs ${this.ttlMs} ms ` +
            `(a bucket keeps the TTL it was created with): leases are renewed every ${renewEveryMs(ttlMs)} ms`,
        );
      }
      return { kv, ttlMs };
    })();
    // A failure (no JetStream permission) is not cached: the next run tries again.
    this.kv.catch(() => (this.kv = undefined));
    return this.kv;
  }

  private renewed(key: string, holder: ResourceLeaseHolder, firstRevision: number): ResourceLease {
    let revision = firstRevision;
    let released = false;
    let timer: NodeJS.Timeout | undefined;
    const renew = async () => {
      const { kv, ttlMs } = await this.bucket();
      const renewal = encodeGoJson({ ...holder, renewed_at: new Date().toISOString() });
      // A reply awaited past the renewal period could outlast a short TTL: wait no longer than it.
      const bound = Math.min(LEASE_OP_MS, renewEveryMs(ttlMs));
      try {
        const updated = await abortable(kv.update(key, renewal, revision), undefined, bound);
        if (updated.ended !== 'done') throw new Error(`no reply within ${bound} ms`);
        revision = updated.value;
      } catch (err) {
        // A renewal applied whose reply was lost leaves `revision` stale: read what is stored, and
        // carry on from it when the entry is still this run's.
        const current = await kv.get(key);
        const stored = current?.operation === 'PUT' ? leaseHolderOf(current) : undefined;
        if (!current || !stored || !sameHolder(stored, holder)) throw err;
        revision = await kv.update(key, renewal, current.revision);
      }
      return ttlMs;
    };
    const schedule = (ttlMs: number) => {
      if (released) return;
      timer = setTimeout(() => {
        void abortable(renew, undefined, LEASE_OP_MS).then(
          (done) => schedule(done.ended === 'done' ? done.value : ttlMs),
          (err: Error) => {
            if (released) return;
            this.log.warn(
              `resource lease of run ${holder.run_id} not renewed: ${err.message}` +
                ' (another run of its resource may start once it expires)',
            );
            schedule(ttlMs);
          },
        );
      }, renewEveryMs(ttlMs));
      timer.unref();
    };
    void this.bucket().then(
      ({ ttlMs }) => schedule(ttlMs),
      () => schedule(this.ttlMs),
    );
    return {
      release: async () => {
        if (released) return;
        released = true;
        clearTimeout(timer);
        // Only our revision: a lease that expired and was taken by another run is not ours to delete.
        const deleting = this.bucket().then(({ kv }) => kv.delete(key, { previousSeq: revision }));
        await abortable(deleting, undefined, LEASE_OP_MS).catch(() => undefined);
      },
    };
  }
}

/** JetStream's "wrong last sequence": another writer's entry came first (a create, or an update after a delete). */
function lostTheRace(err: unknown): boolean {
  return (err as { api_error?: { err_code?: number } })?.api_error?.err_code === 10071;
}

/** How soon a lease lost to a race every time is asked for again. */
const CONTENDED_RETRY_MS = 100;

function renewEveryMs(ttlMs: number): number {
  return Math.max(100, Math.floor(ttlMs / 3));
}

/** When an entry frees itself if its holder stops renewing (a margin for clocks and the server's sweep). */
function expiryOf(entry: KvEntry, ttlMs: number): number {
  return entry.created.getTime() + ttlMs + 250;
}

/**
 * The holder an entry names, or undefined when it is foreign: the value is another tool's or
 * version's, and is never cast into a holder this code would act on (cancel its run, compare it).
 */
export function leaseHolderOf(entry: { string(): string }): ResourceLeaseHolder | undefined {
  let value: unknown;
  try {
    value = JSON.parse(entry.string());
  } catch {
    return undefined;
  }
  const h = value as Partial<ResourceLeaseHolder> | null;
  if (
    typeof h !== 'object' ||
    h === null ||
    !isSubjectToken(h.run_id) ||
    typeof h.message_id !== 'string' ||
    typeof h.stream_seq !== 'number' ||
    !Number.isSafeInteger(h.stream_seq) ||
    typeof h.renewed_at !== 'string'
  )
    return undefined;
  return { run_id: h.run_id, message_id: h.message_id, stream_seq: h.stream_seq, renewed_at: h.renewed_at };
}

function sameHolder(a: ResourceLeaseHolder, b: ResourceLeaseHolder): boolean {
  return a.run_id === b.run_id && a.message_id === b.message_id && a.stream_seq === b.stream_seq;
}

/** Leases in memory, for the testing module (one process, no expiry needed). */
export class MemoryLeaseStore implements LeaseStore {
  private readonly held = new Map<string, ResourceLeaseHolder>();
  private readonly released = new Map<string, Set<() => void>>();
  private readonly waits = new Map<string, number>();

  async waitsOf(driver: string, streamSeq: number): Promise<number> {
    return this.waits.get(waitsKey(driver, streamSeq)) ?? 0;
  }

  async countWait(driver: string, streamSeq: number): Promise<void> {
    const key = waitsKey(driver, streamSeq);
    this.waits.set(key, (this.waits.get(key) ?? 0) + 1);
  }

  async forgetWaits(driver: string, streamSeq: number): Promise<void> {
    this.waits.delete(waitsKey(driver, streamSeq));
  }

  async acquire(key: string, holder: ResourceLeaseHolder): Promise<LeaseAttempt> {
    const current = this.held.get(key);
    if (current) return { kind: 'held', holder: current, expiresAt: Infinity };
    this.held.set(key, holder);
    return {
      kind: 'acquired',
      lease: {
        release: async () => {
          if (this.held.get(key) !== holder) return;
          this.held.delete(key);
          for (const wake of this.released.get(key) ?? []) wake();
        },
      },
    };
  }

  async waitForRelease(key: string, _expiresAt: number, signal: AbortSignal): Promise<void> {
    if (!this.held.has(key) || signal.aborted) return;
    const waiters = this.released.get(key) ?? new Set<() => void>();
    this.released.set(key, waiters);
    await new Promise<void>((resolve) => {
      const wake = () => {
        waiters.delete(wake);
        if (waiters.size === 0) this.released.delete(key);
        signal.removeEventListener('abort', wake);
        resolve();
      };
      waiters.add(wake);
      signal.addEventListener('abort', wake, { once: true });
    });
  }
}
