import type { LoggerService } from '@nestjs/common';
import type { KV, NatsConnection } from 'nats';
import { RUN_LEASES_BUCKET, ResourceLeaseHolder, encodeGoJson } from '../protocol';

/** A lease this process holds: renewed until released. */
export interface ResourceLease {
  release(): Promise<void>;
}

export type LeaseAttempt =
  | { kind: 'acquired'; lease: ResourceLease }
  /** Another run holds it. */
  | { kind: 'held'; holder: ResourceLeaseHolder };

/** Where leases live: the `conveyor-run-leases` KV bucket, or memory in the testing module. */
export interface LeaseStore {
  acquire(key: string, holder: ResourceLeaseHolder): Promise<LeaseAttempt>;
}

/**
 * Leases in JetStream KV. `create` succeeds only when no live entry exists, which makes the bucket
 * the one arbiter across replicas; a holder renews its entry every third of the bucket's TTL (each
 * put restarts the entry's age), so a replica that dies stops renewing and its lease expires.
 */
export class KvLeaseStore implements LeaseStore {
  private kv?: Promise<KV>;

  constructor(
    private readonly nc: NatsConnection,
    private readonly ttlMs: number,
    private readonly log: LoggerService,
  ) {}

  async acquire(key: string, holder: ResourceLeaseHolder): Promise<LeaseAttempt> {
    const kv = await this.bucket();
    const bytes = encodeGoJson(holder);
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        return { kind: 'acquired', lease: this.renewed(kv, key, holder, await kv.create(key, bytes)) };
      } catch {
        const current = await kv.get(key);
        // Freed (deleted, or expired) between the create and the get: try once more.
        if (!current || current.operation !== 'PUT') continue;
        const held = JSON.parse(current.string()) as ResourceLeaseHolder;
        if (held.message_id !== holder.message_id) return { kind: 'held', holder: held };
        // Our own message, redelivered after its run here died: take the lease over.
        const revision = await kv.update(key, bytes, current.revision);
        return { kind: 'acquired', lease: this.renewed(kv, key, holder, revision) };
      }
    }
    throw new Error(`resource lease ${key}: contended, try again`);
  }

  private bucket(): Promise<KV> {
    this.kv ??= this.nc.jetstream().views.kv(RUN_LEASES_BUCKET, { ttl: this.ttlMs, history: 1 });
    // A failure (no JetStream permission) is not cached: the next run tries again.
    this.kv.catch(() => (this.kv = undefined));
    return this.kv;
  }

  private renewed(kv: KV, key: string, holder: ResourceLeaseHolder, revision: number): ResourceLease {
    let released = false;
    const timer = setInterval(
      () => {
        const renewal = encodeGoJson({ ...holder, renewed_at: new Date().toISOString() });
        kv.update(key, renewal, revision).then(
          (next) => (revision = next),
          (err: Error) => {
            if (!released)
              this.log.warn(`resource lease of run ${holder.run_id} not renewed: ${err.message}`);
          },
        );
      },
      Math.max(100, Math.floor(this.ttlMs / 3)),
    );
    timer.unref();
    return {
      release: async () => {
        if (released) return;
        released = true;
        clearInterval(timer);
        // Only our revision: a lease that expired and was taken by another run is not ours to delete.
        await kv.delete(key, { previousSeq: revision }).catch(() => undefined);
      },
    };
  }
}

/** Leases in memory, for the testing module (one process, no expiry needed). */
export class MemoryLeaseStore implements LeaseStore {
  private readonly held = new Map<string, ResourceLeaseHolder>();

  async acquire(key: string, holder: ResourceLeaseHolder): Promise<LeaseAttempt> {
    const current = this.held.get(key);
    if (current && current.message_id !== holder.message_id) return { kind: 'held', holder: current };
    this.held.set(key, holder);
    return {
      kind: 'acquired',
      lease: {
        release: async () => {
          if (this.held.get(key) === holder) this.held.delete(key);
        },
      },
    };
  }
}
