import { Logger } from '@nestjs/common';
import { writeTransportLine } from '../logger/process-log.adapter';
import type { Settlement, SettlementKind } from '../settlement/settlement.policy';
import type { InboundMessage } from './message-port';
import { MessageRun } from './message-run';
import type { RunEnvironment } from './run-environment';
import { settlementLine, type RunLineFacts } from './run-line';
import { StuckWork } from './stuck-work';

/** Counters of what happened to messages, by settlement row, plus runs in flight and past their timeout. */
export interface DispatchStats {
  settled: Record<SettlementKind, number>;
  inFlight: number;
  /** Runs whose timeout elapsed but whose handler has not let go of its slot yet. */
  overdue: number;
  /** Messages no handler here serves, nak'd and expected back (rolling deploys, retired subjects). */
  unroutedHeld: number;
}

const SETTLEMENT_KINDS: SettlementKind[] = [
  'succeeded',
  'failed',
  'retried',
  'gave-up',
  'timed-out',
  'filtered',
  'unrouted',
  'dead-lettered',
  'stale',
  'cancelled',
  'waiting',
  'shutdown',
];

function zeroCounts(): Record<SettlementKind, number> {
  return Object.fromEntries(SETTLEMENT_KINDS.map((k) => [k, 0])) as Record<SettlementKind, number>;
}

/** Stats before anything was pulled. */
export function emptyDispatchStats(): DispatchStats {
  return { settled: zeroCounts(), inFlight: 0, overdue: 0, unroutedHeld: 0 };
}

type EnvironmentWithoutBookkeeping = Omit<
  RunEnvironment,
  'record' | 'unrouted' | 'stopWaiting' | 'deadline' | 'leaseWaits' | 'stuck'
>;

/**
 * How long shutdown waits past its deadline for aborted handlers to let go and a result already on
 * the wire to land (its grace is shorter), before it gives up on them and names them.
 */
const DEADLINE_GRACE_MS = 3000;

/** Pull ahead of free slots only while handlers are this quick: a long build must not hold the next event from an idle replica. */
const PREFETCH_MAX_RUN_MS = 1000;

/**
 * The live {@link MessageRun}s of a transport: starts one per message, heartbeats them all from one
 * timer, counts their final rows, and ends them at shutdown (nak what waits, then the deadline).
 */
export class MessageRuns {
  private readonly live = new Set<MessageRun>();
  private readonly counts = zeroCounts();
  /** Stream sequence of a nak'd unrouted message -> when it is expected back at the latest. */
  private readonly unroutedHeld = new Map<number, number>();
  private readonly stuckWork = new StuckWork();
  private readonly env: RunEnvironment;
  private ticker?: NodeJS.Timeout;
  private tickerMs = 0;
  private emptied?: () => void;
  private readonly stopWaiting = new AbortController();
  private readonly deadlineHit = new AbortController();
  /** Moving average of handler run times (none measured yet: assume long). */
  private runMs = Infinity;

  constructor(
    env: EnvironmentWithoutBookkeeping,
    /** Called when a run ends or frees its slot: the session may pull again. */
    private readonly onLeave: () => void = () => undefined,
  ) {
    this.env = {
      ...env,
      stopWaiting: this.stopWaiting.signal,
      deadline: this.deadlineHit.signal,
      record: (settlement, facts) => this.record(settlement, facts),
      unrouted: (seq, held, delayMs) => this.trackUnrouted(seq, held, delayMs),
      leaseWaits: { held: 0, limit: env.slots.concurrency },
      stuck: this.stuckWork,
    };
  }

  /** Messages between arrival and final verb. */
  get size(): number {
    return this.live.size;
  }

  /** Messages that will need a run slot before anything else (received, or waiting for one). */
  get queued(): number {
    let n = 0;
    for (const run of this.live) if (run.queued) n += 1;
    return n;
  }

  /**
   * Messages worth holding beyond the free slots: with quick handlers, a message already here
   * starts the moment a slot frees instead of a pull round trip later. Held messages are heartbeated
   * from arrival and nak'd at shutdown like any waiting message.
   */
  get prefetch(): number {
    return this.runMs <= PREFETCH_MAX_RUN_MS ? Math.ceil(this.env.slots.concurrency / 2) : 0;
  }

  get stats(): DispatchStats {
    let overdue = 0;
    for (const run of this.live) if (run.overdue) overdue += 1;
    this.pruneUnrouted();
    return {
      settled: { ...this.counts },
      inFlight: this.live.size,
      overdue,
      unroutedHeld: this.unroutedHeld.size,
    };
  }

  /** Work left behind past its deadline and still going (hung hooks, handlers ignoring their signal). */
  get stuck(): string[] {
    return this.stuckWork.list();
  }

  /** Cancels every live message of run `runId` here: a running handler is aborted, a waiting one never starts. */
  cancel(runId: string, reason: string): number {
    let cancelled = 0;
    for (const run of this.live) {
      if (run.runId === runId && run.cancel(reason)) cancelled += 1;
    }
    return cancelled;
  }

  /** Starts the run of `message`; resolves when it settled (never rejects). */
  start(message: InboundMessage): Promise<MessageRun> {
    const run = new MessageRun(this.env, message);
    this.live.add(run);
    // Pulled after shutdown began (a pull request still open): offered to another replica at once.
    if (this.stopWaiting.signal.aborted) run.shutdown();
    this.ensureTicker();
    return run.execute().then(() => {
      this.live.delete(run);
      const ran = run.handlerMs;
      if (ran !== undefined) this.runMs = this.runMs === Infinity ? ran : 0.8 * this.runMs + 0.2 * ran;
      this.onLeave();
      if (this.live.size === 0) this.emptied?.();
      return run;
    });
  }

  /**
   * Shutdown: messages waiting for a slot are nak'd at once; running ones get up to `timeoutMs`.
   * Past it they are aborted: nak'd so another replica reruns them now, except a result already on
   * the wire (acked once it lands, within a short grace).
   * @returns the runs still here after all that (a handler ignoring its abort signal), described.
   */
  async drain(timeoutMs: number): Promise<string[]> {
    this.stopWaiting.abort();
    for (const run of this.live) run.shutdown();
    if (!(await this.allSettled(timeoutMs))) {
      this.deadlineHit.abort();
      for (const run of this.live) run.deadline();
      await this.allSettled(DEADLINE_GRACE_MS);
    }
    clearInterval(this.ticker);
    this.ticker = undefined;
    return [...this.live].map((run) => run.describe());
  }

  private allSettled(timeoutMs: number): Promise<boolean> {
    if (this.live.size === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.emptied = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }

  /** The sampled consumer changed (its AckWait): heartbeats follow at once. */
  consumerChanged(): void {
    if (this.ticker) this.ensureTicker();
  }

  /**
   * One timer for every run: `working()` for those older than half a period, so short runs send
   * none. It runs while runs are here (and one period after the last).
   */
  private ensureTicker(): void {
    const periodMs = this.env.consumer().heartbeatMs;
    if (this.ticker && periodMs === this.tickerMs) return;
    clearInterval(this.ticker);
    this.tickerMs = periodMs;
    this.ticker = setInterval(() => this.heartbeat(), periodMs);
    this.ticker.unref();
  }

  private heartbeat(): void {
    if (this.live.size === 0) {
      // Idle: nothing to heartbeat until the next run starts the ticker again. Stopped here, not
      // when the last run leaves, so runs one at a time do not start and stop a timer each.
      clearInterval(this.ticker);
      this.ticker = undefined;
      return;
    }
    const youngest = Date.now() - this.tickerMs / 2;
    for (const run of this.live) {
      if (run.needsHeartbeat && run.receivedAt <= youngest) {
        try {
          run.message.working();
        } catch {
          /* disconnected: the reconnect restores it, or AckWait redelivers (a duplicate, never a loss) */
        }
      }
    }
    // The sampled consumer may have a new AckWait.
    this.ensureTicker();
  }

  private record(settlement: Settlement, facts: () => RunLineFacts): void {
    this.counts[settlement.kind] += 1;
    if (this.env.observers.listening)
      this.env.observers.messageSettled({ outcome: settlement.kind, action: settlement.action });
    const level = settlement.level;
    // Formatting a line per message costs real time at thousands of messages a second.
    if (!levelEnabled(level)) return;
    const { text, fields } = settlementLine(settlement, facts());
    writeTransportLine(this.env.logger, 'ConveyorTransport', level === 'log' ? 'info' : level, text, fields);
  }

  private trackUnrouted(streamSequence: number, held: boolean, delayMs = 0): void {
    // Expected back after its delay, give or take two AckWaits (the ticker runs at half of one).
    if (held) {
      this.unroutedHeld.set(streamSequence, Date.now() + delayMs + 4 * this.tickerMs + 1000);
      // Pruned as it grows too, not only when someone reads `stats`: nobody may ever read them.
      if (this.unroutedHeld.size % 256 === 0) this.pruneUnrouted();
    } else if (this.unroutedHeld.size > 0) this.unroutedHeld.delete(streamSequence);
  }

  private pruneUnrouted(): void {
    const now = Date.now();
    for (const [seq, until] of this.unroutedHeld) if (until < now) this.unroutedHeld.delete(seq);
  }
}

/**
 * Nest's `Logger.isLevelEnabled` answers false for every level while no level list was set, which
 * is the case when an app installs its own logger (`app.useLogger(pinoLogger)`, as the reference
 * driver does): every settlement line was then silently dropped. That logger filters by its own
 * level, so each level is handed to it; with a level list (`logger: ['error', 'warn']`) it decides.
 */
function levelEnabled(level: Settlement['level']): boolean {
  return Logger.isLevelEnabled(level) || !Logger.isLevelEnabled('fatal');
}
