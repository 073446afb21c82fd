import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import type { LoggerService } from '@nestjs/common';
import type { KV, NatsConnection } from 'nats';
import { encodeGoJson } from '../protocol';
import { bundledLibraryVersion } from '../module/bundle-markers';
import { abortable } from '../util/abortable';
import {
  DEFAULT_REGISTRY_TTL_MS,
  DRIVER_REGISTRY_BUCKET,
  DriverRegistryEntry,
  registryKey,
} from './driver-registry.entry';

/** What changes between writes; the rest of the entry is fixed at start. */
export interface PresenceFacts {
  driver: string;
  resources: DriverRegistryEntry['resources'];
  concurrency: number;
  inFlight: number;
  state: string;
}

/** The longest one KV operation may take (the JetStream API's own timeout is 5 s). */
const KV_OP_MS = 5_000;
/** Writes for changes (state, shutdown) come at most this often; heartbeats are apart by TTL / 3. */
const MIN_WRITE_GAP_MS = 1_000;

/**
 * This replica's entry in the driver registry: written when the transport starts consuming,
 * rewritten every third of the bucket's TTL (an unref'd timer, so an idle process only wakes for
 * that), and deleted on clean shutdown. The transport owns it: `start` with each connection it
 * dials, `stop` in its last shutdown hook. Every write is best effort and bounded: the registry is
 * for people and tools, and never holds a run.
 */
export class DriverPresence {
  readonly instanceId = randomBytes(6).toString('hex');
  private readonly startedAt = new Date().toISOString();
  private readonly versions = { app: appVersion(), library: libraryVersion() };
  private nc?: NatsConnection;
  private bucket?: Promise<{ kv: KV; ttlMs: number }>;
  private timer?: NodeJS.Timeout;
  private lastWrite = 0;
  /** The write in flight: a delete waits for it, or the put could land after the delete. */
  private writing?: Promise<void>;
  private stopped = false;
  private failing = false;
  /** A write for a change is scheduled: more changes before it ride along. */
  private changePending = false;

  constructor(
    private readonly facts: () => PresenceFacts,
    private readonly log: LoggerService,
    private readonly ttlMs = DEFAULT_REGISTRY_TTL_MS,
  ) {}

  /** Writes the entry now over `nc` (a new connection after a redial: from now on over it) and keeps it alive. */
  start(nc: NatsConnection): void {
    if (this.stopped) return;
    if (nc === this.nc) return this.changed();
    this.nc = nc;
    this.bucket = undefined;
    this.schedule(0);
  }

  /** Something the entry shows changed (state, shutdown): written within a second, not at once per change. */
  changed(): void {
    // One timer per burst of changes: a busy replica pays a flag check per run, not a timer.
    if (this.stopped || !this.nc || this.changePending) return;
    this.changePending = true;
    this.schedule(Math.max(0, this.lastWrite + MIN_WRITE_GAP_MS - Date.now()));
  }

  /** Stops heartbeating and deletes the entry. Never rejects; bounded in time. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    await this.writing;
    const nc = this.nc;
    if (!nc || nc.isClosed()) return;
    const key = registryKey(this.facts().driver, this.instanceId);
    const deleting = this.open().then(({ kv }) => kv.delete(key));
    await abortable(deleting, undefined, KV_OP_MS).catch(() => undefined);
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      // One write at a time: the running one schedules the next (a change it did not carry
      // included), and stop() waits for the only put that can land after it.
      if (this.writing) return;
      this.writing = this.write().finally(() => (this.writing = undefined));
    }, delayMs);
    this.timer.unref();
  }

  private async write(): Promise<void> {
    if (this.stopped || !this.nc) return;
    this.lastWrite = Date.now();
    this.changePending = false;
    let ttlMs = this.ttlMs;
    try {
      const done = await abortable(
        async () => {
          const bucket = await this.open();
          ttlMs = bucket.ttlMs;
          await bucket.kv.put(this.key(), encodeGoJson(this.entry()));
        },
        undefined,
        KV_OP_MS,
      );
      if (done.ended !== 'done') throw new Error(`no reply within ${KV_OP_MS} ms`);
      if (this.failing) this.log.log?.(`driver registry entry written again (${DRIVER_REGISTRY_BUCKET})`);
      this.failing = false;
    } catch (err) {
      // Once per failure streak: a registry that cannot be written must not flood the log.
      if (!this.failing)
        this.log.warn(
          `driver registry entry not written (${DRIVER_REGISTRY_BUCKET}): ${(err as Error)?.message ?? err}; ` +
            'consoles and `npm run dev` may not see this replica',
        );
      this.failing = true;
    }
    if (this.stopped) return;
    // A change made while this write was on the way still goes within the gap, not a heartbeat later.
    this.schedule(
      this.changePending
        ? Math.max(0, this.lastWrite + MIN_WRITE_GAP_MS - Date.now())
        : heartbeatEveryMs(ttlMs),
    );
  }

  private key(): string {
    return registryKey(this.facts().driver, this.instanceId);
  }

  private entry(): DriverRegistryEntry {
    const facts = this.facts();
    return {
      driver: facts.driver,
      instance_id: this.instanceId,
      host: hostname(),
      pid: process.pid,
      ...(this.versions.app ? { app_version: this.versions.app } : {}),
      ...(this.versions.library ? { library_version: this.versions.library } : {}),
      resources: facts.resources,
      concurrency: facts.concurrency,
      in_flight: facts.inFlight,
      state: facts.state,
      started_at: this.startedAt,
      heartbeat_at: new Date().toISOString(),
    };
  }

  private open(): Promise<{ kv: KV; ttlMs: number }> {
    const nc = this.nc!;
    this.bucket ??= (async () => {
      const kv = await nc.jetstream().views.kv(DRIVER_REGISTRY_BUCKET, { ttl: this.ttlMs, history: 1 });
      // The bucket's TTL wins over ours (it may have been made by another version or a test).
      return { kv, ttlMs: (await kv.status()).ttl || this.ttlMs };
    })();
    // A failure (no JetStream yet, no permission) is not cached: the next heartbeat tries again.
    this.bucket.catch(() => (this.bucket = undefined));
    return this.bucket;
  }
}

/** A third of the TTL: an entry outlives two lost heartbeats. */
export function heartbeatEveryMs(ttlMs: number): number {
  return Math.max(200, Math.floor(ttlMs / 3));
}

/** The version in the first `package.json` named `name` above `from` (or any, when `name` is undefined). */
function versionAbove(
  from: string | undefined,
  accept: (pkg: { name?: string }) => boolean,
): string | undefined {
  for (let dir = from, depth = 0; dir && depth < 8; dir = dirname(dir), depth++) {
    // In this repository's own build the library's package.json is at libs/conveyor, beside dist.
    for (const candidate of [join(dir, 'package.json'), join(dir, 'libs', 'conveyor', 'package.json')]) {
      try {
        if (!existsSync(candidate)) continue;
        const pkg = JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string; version?: string };
        if (accept(pkg) && typeof pkg.version === 'string') return pkg.version;
      } catch {
        /* unreadable: look further up */
      }
    }
    if (dirname(dir) === dir) break;
  }
  return undefined;
}

/** `@conveyor-ci/nestjs`'s version, read once at start. */
function libraryVersion(): string | undefined {
  return bundledLibraryVersion() ?? versionAbove(__dirname, (pkg) => pkg.name === '@conveyor-ci/nestjs');
}

/** The app's version: npm's when started by npm, else the nearest package.json above the entry script. */
function appVersion(): string | undefined {
  if (process.env.npm_package_version) return process.env.npm_package_version;
  const main = require.main?.filename;
  return main ? versionAbove(dirname(main), (pkg) => pkg.name !== '@conveyor-ci/nestjs') : undefined;
}
