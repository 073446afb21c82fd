import { randomBytes, randomUUID } from 'node:crypto';
import type { JetStreamManager, Msg, NatsConnection, Subscription } from 'nats';
import { headers as natsHeaders } from 'nats';
import {
  ConveyorLog,
  MESSAGES_STREAM,
  RESULT_SUBJECT,
  RUN_CONTROL_PREFIX,
  RunProgress,
  encodeGoJson,
  isSubjectToken,
  parseMessageSubject,
  pipelineStepSubject,
} from '../protocol';
import { DriverRegistry } from '../registry/driver-registry';
import type { LiveDriverInstance } from '../registry/driver-registry.entry';
import { publishCancel } from '../run-control/run-control.nats';
import { DEAD_LETTER_HEADERS } from '../settlement/dead-letter';
import { abortable } from '../util/abortable';

/** Where a console gets what the core subjects do not carry. */
export interface ConsoleSources {
  /** The NATS connection to watch and act on now (a transport redials: asked again at each use). */
  connection(): NatsConnection | undefined;
  /** Subject drivers publish dead letters on (their `deadLetterSubject`); none: the section says so. */
  deadLetterSubject?: string;
  /** A run's stored log lines (`GET /logs?runid=`), read once its steps ended. */
  storedLogs?(runId: string): Promise<ConveyorLog[]>;
  /** The drivers of a pipeline's steps in order, when known: its later steps show as waiting. */
  pipelineSteps?(pipeline: string): string[] | undefined;
  /** How long a cancel is remembered for steps not started yet. Default 1 h. */
  cancelTtlMs?: number;
}

/** A step's state as the console shows it. */
export type ConsoleStepState = 'waiting' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface ConsoleStep {
  driver: string;
  state: ConsoleStepState;
  /** RFC 3339: dispatched (or first seen). */
  queued_at: string;
  /** RFC 3339: its first progress report or log line. */
  started_at?: string;
  ended_at?: string;
  /** From dispatch to result (time waiting for a free replica included). */
  duration_ms?: number;
  message?: string;
  progress?: Pick<RunProgress, 'fraction' | 'done' | 'total' | 'phase'>;
}

export interface ConsoleRun {
  run_id: string;
  resource?: { type: string; name: string };
  pipeline?: string;
  first_seen: string;
  steps: ConsoleStep[];
  /** The last lines (live as they arrive; from the store once the run ended). */
  logs: Pick<ConveyorLog, 'driver' | 'timestamp' | 'message'>[];
  log_source: 'live' | 'store';
  /** This run replays a dead letter. */
  replay_of?: { dead_letter: string; run_id?: string };
}

export interface ConsoleDeadLetter {
  id: string;
  reason: string;
  driver: string;
  subject: string;
  run_id?: string;
  failed_at: string;
  stream_sequence?: number;
  /** The original message as text (as received by the driver). */
  event: string;
  replayed_as?: string;
}

export interface ConsoleDriver {
  driver: string;
  instances: LiveDriverInstance[];
  /** The driver's durable consumer on `messages`, when it exists. */
  consumer?: { pending: number; ack_pending: number; redelivered: number; waiting: number };
}

/** What `GET {path}/api/state` answers. */
export interface ConsoleState {
  now: string;
  connected: boolean;
  drivers: ConsoleDriver[];
  runs: ConsoleRun[];
  dead_letters: { subject?: string; items: ConsoleDeadLetter[] };
  /** Steps waiting for a driver that has no live replica. */
  warnings: string[];
}

/** Bounds: a console watching a busy deployment keeps a window, not a history. */
const MAX_RUNS = 30;
const MAX_LOG_LINES = 300;
const MAX_DEAD_LETTERS = 50;
const MAX_EVENT_CHARS = 8_000;
/** The longest a state answer waits on one JetStream request, and a cancel or replay on its publish. */
const NATS_WAIT_MS = 3_000;
/** Stored lines are read this long after a run's last step ended, so the logs engine has stored its tail. */
const STORE_SETTLE_MS = 500;

const decoder = new TextDecoder();

/**
 * What the console shows, kept from core NATS: dispatches on `resources.*` and
 * `drivers.*.resources.*`, results on `pipelines.driver.result`, progress reports, live log lines,
 * dead letters; drivers from the registry, consumer counts from JetStream. Only subscriptions
 * (contract §16: never a consumer on the server's work queues), held while the console is in use.
 */
export class ConsoleTracker {
  private readonly runs = new Map<string, ConsoleRun>();
  private readonly deadLetters = new Map<string, ConsoleDeadLetter & { raw: Uint8Array }>();
  private readonly consumers = new Map<string, { at: number; value?: ConsoleDriver['consumer'] }>();
  private drivers: LiveDriverInstance[] = [];
  private watching?: {
    nc: NatsConnection;
    subs: Subscription[];
    stop: AbortController;
    jsm?: JetStreamManager;
  };
  private deadLetterSeq = 0;

  constructor(private readonly sources: ConsoleSources) {}

  /**
   * Starts watching over the current connection, so runs from now on are seen whole (without it,
   * the first `state()` starts). Returns whether there was a connection to watch over.
   */
  start(): boolean {
    return this.watch() !== undefined;
  }

  /** The current state; subscribes on first use (and again over a new connection after a redial). */
  async state(): Promise<ConsoleState> {
    const nc = this.watch();
    const drivers = nc ? await this.driverRows(nc) : [];
    const live = new Set(this.drivers.map((instance) => instance.driver));
    const warnings: string[] = [];
    for (const run of this.runs.values())
      for (const step of run.steps)
        if (step.state === 'waiting' && !live.has(step.driver))
          warnings.push(`run ${run.run_id} waits for driver "${step.driver}", which has no live replica`);
    return {
      now: new Date().toISOString(),
      connected: nc !== undefined,
      drivers,
      runs: [...this.runs.values()].reverse(),
      dead_letters: {
        subject: this.sources.deadLetterSubject,
        items: [...this.deadLetters.values()].reverse().map(({ raw: _raw, ...item }) => item),
      },
      warnings,
    };
  }

  /** Cancels run `runId` (every step of it, on any replica). */
  async cancel(runId: string, reason: string): Promise<{ remembered: boolean }> {
    if (!isSubjectToken(runId)) throw new ConsoleRequestError(400, 'not a run id');
    const nc = this.requireConnection();
    const text = reason.trim().slice(0, 500) || 'cancelled from the console';
    const sent = await abortable(
      publishCancel(nc, runId, text, this.sources.cancelTtlMs),
      undefined,
      NATS_WAIT_MS * 3,
    );
    if (sent.ended !== 'done') throw new ConsoleRequestError(504, 'NATS did not take the cancel in time');
    return sent.value;
  }

  /**
   * Sends dead letter `id`'s original event again, to the one driver that gave up on it
   * (`drivers.{driver}.resources.{type}`), with a new run id and message id. The new run links back.
   */
  async replay(id: string): Promise<{ run_id: string; subject: string }> {
    const letter = this.deadLetters.get(id);
    if (!letter)
      throw new ConsoleRequestError(
        404,
        `no dead letter ${id} (the console keeps the last ${MAX_DEAD_LETTERS})`,
      );
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(decoder.decode(letter.raw)) as Record<string, unknown>;
      if (typeof message !== 'object' || message === null || Array.isArray(message)) throw new Error();
    } catch {
      throw new ConsoleRequestError(
        422,
        'the original event is not a JSON object: it cannot get a new run id',
      );
    }
    const type = parseMessageSubject(letter.subject)?.resource ?? resourceTypeOf(message.payload);
    if (!isSubjectToken(type) || !isSubjectToken(letter.driver))
      throw new ConsoleRequestError(422, 'the resource type of the original event is unknown');
    const runId = randomUUID();
    const subject = pipelineStepSubject(letter.driver, type);
    const replayed = { ...message, run_id: runId, id: randomBytes(12).toString('hex') };
    const h = natsHeaders();
    h.set('Conveyor-Replay-Of', letter.run_id ?? `dead letter ${letter.id}`);
    const nc = this.requireConnection();
    // Linked before the publish: the driver's first log line may come before the PubAck.
    const run = this.runOf(runId);
    run.replay_of = { dead_letter: letter.id, ...(letter.run_id ? { run_id: letter.run_id } : {}) };
    letter.replayed_as = runId;
    const published = await abortable(
      nc.jetstream().publish(subject, encodeGoJson(replayed), {
        headers: h,
        msgID: `replay:${runId}`,
        timeout: NATS_WAIT_MS,
      }),
      undefined,
      NATS_WAIT_MS + 500,
    );
    if (published.ended !== 'done')
      throw new ConsoleRequestError(504, 'NATS did not take the replay in time');
    return { run_id: runId, subject };
  }

  /** Unsubscribes; the next `state()` subscribes again. */
  close(): void {
    const watching = this.watching;
    this.watching = undefined;
    if (!watching) return;
    watching.stop.abort();
    for (const sub of watching.subs) sub.unsubscribe();
  }

  private requireConnection(): NatsConnection {
    const nc = this.watch();
    if (!nc) throw new ConsoleRequestError(503, 'no NATS connection');
    return nc;
  }

  /** Subscribes over the current connection, once per connection. */
  private watch(): NatsConnection | undefined {
    const nc = this.sources.connection();
    if (!nc || nc.isClosed()) return undefined;
    if (this.watching?.nc === nc) return nc;
    this.close();
    const stop = new AbortController();
    const on = (subject: string, handle: (msg: Msg) => void) =>
      nc.subscribe(subject, {
        callback: (err, msg) => {
          if (err) return;
          try {
            handle(msg);
          } catch {
            /* a message of another shape: not the console's to show */
          }
        },
      });
    const subs = [
      on('drivers.*.resources.*', (msg) => this.onDispatch(msg)),
      on('resources.*', (msg) => this.onDispatch(msg)),
      on('pipelines.pipeline.init', (msg) => this.onPipelineInit(msg)),
      on(RESULT_SUBJECT, (msg) => this.onResult(msg)),
      on(`${RUN_CONTROL_PREFIX}.progress.*.*`, (msg) => this.onProgress(msg)),
      on('live.logs.*.*', (msg) => this.onLog(msg)),
      ...(this.sources.deadLetterSubject
        ? [on(this.sources.deadLetterSubject, (msg) => this.onDeadLetter(msg))]
        : []),
    ];
    this.watching = { nc, subs, stop };
    void (async () => {
      const registry = new DriverRegistry(nc);
      try {
        for await (const list of registry.watch(stop.signal)) this.drivers = list;
      } catch {
        /* the connection closed: the next state() watches over the new one */
      }
    })();
    return nc;
  }

  private async driverRows(nc: NatsConnection): Promise<ConsoleDriver[]> {
    const names = new Set(this.drivers.map((instance) => instance.driver));
    for (const run of this.runs.values()) for (const step of run.steps) names.add(step.driver);
    return Promise.all(
      [...names].sort().map(async (driver) => ({
        driver,
        instances: this.drivers.filter((instance) => instance.driver === driver),
        consumer: await this.consumerOf(nc, driver),
      })),
    );
  }

  /** The consumer's counts, read at most once a second per driver and within a bound. */
  private async consumerOf(nc: NatsConnection, driver: string): Promise<ConsoleDriver['consumer']> {
    const cached = this.consumers.get(driver);
    if (cached && Date.now() - cached.at < 1_000) return cached.value;
    let value: ConsoleDriver['consumer'];
    try {
      const watching = this.watching!;
      watching.jsm ??= await nc.jetstreamManager({ checkAPI: false });
      const info = await abortable(
        watching.jsm.consumers.info(MESSAGES_STREAM, driver),
        undefined,
        NATS_WAIT_MS,
      );
      if (info.ended === 'done')
        value = {
          pending: info.value.num_pending,
          ack_pending: info.value.num_ack_pending,
          redelivered: info.value.num_redelivered,
          waiting: info.value.num_waiting,
        };
    } catch {
      value = undefined; // no consumer (yet), or JetStream not answering: shown as unknown
    }
    this.consumers.set(driver, { at: Date.now(), value });
    if (this.consumers.size > 200) this.consumers.delete(this.consumers.keys().next().value!);
    return value;
  }

  private runOf(runId: string): ConsoleRun {
    let run = this.runs.get(runId);
    if (!run) {
      run = { run_id: runId, first_seen: new Date().toISOString(), steps: [], logs: [], log_source: 'live' };
      this.runs.set(runId, run);
      this.evictRuns();
    }
    return run;
  }

  /** The oldest runs go first, ended ones before running ones. */
  private evictRuns(): void {
    while (this.runs.size > MAX_RUNS) {
      const ended = [...this.runs.values()].find((run) => run.steps.every((s) => isEnded(s.state)));
      this.runs.delete(ended?.run_id ?? this.runs.keys().next().value!);
    }
  }

  private stepOf(run: ConsoleRun, driver: string): ConsoleStep {
    let step = run.steps.find((s) => s.driver === driver);
    if (!step) {
      step = { driver, state: 'waiting', queued_at: new Date().toISOString() };
      run.steps.push(step);
    }
    return step;
  }

  private describe(run: ConsoleRun, resource: unknown): void {
    const r = (typeof resource === 'string' ? JSON.parse(resource) : resource) as
      { resource?: unknown; name?: unknown; pipeline?: unknown } | undefined;
    if (!r || typeof r !== 'object') return;
    if (typeof r.resource === 'string' && typeof r.name === 'string')
      run.resource ??= { type: r.resource, name: r.name };
    if (typeof r.pipeline === 'string' && r.pipeline && !run.pipeline) {
      run.pipeline = r.pipeline;
      // Every step of a known pipeline shows from the start, later ones waiting.
      for (const driver of this.sources.pipelineSteps?.(r.pipeline) ?? []) this.stepOf(run, driver);
    }
  }

  private onPipelineInit(msg: Msg): void {
    const event = msg.json<{ run_id?: unknown; resource?: unknown }>();
    if (!isSubjectToken(event.run_id)) return;
    this.describe(this.runOf(event.run_id), event.resource);
  }

  private onDispatch(msg: Msg): void {
    const route = parseMessageSubject(msg.subject);
    const message = msg.json<{ run_id?: unknown; payload?: unknown }>();
    if (!route || !isSubjectToken(message.run_id)) return;
    const run = this.runOf(message.run_id);
    this.describe(run, message.payload);
    if (route.kind === 'pipeline-step') {
      const step = this.stepOf(run, route.driver);
      // Its time starts now (a later step shown since the run began), or again (the step dispatched anew).
      if (step.state === 'waiting' || isEnded(step.state))
        Object.assign(step, { state: 'waiting', queued_at: new Date().toISOString() });
    } else {
      // A direct event goes to every driver of its type: each live one is a step.
      for (const instance of this.drivers)
        if (instance.resources.some((r) => r.resource === route.resource)) this.stepOf(run, instance.driver);
    }
  }

  private running(run: ConsoleRun, driver: string): ConsoleStep {
    const step = this.stepOf(run, driver);
    if (step.state === 'waiting') {
      step.state = 'running';
      step.started_at = new Date().toISOString();
    }
    return step;
  }

  private onProgress(msg: Msg): void {
    const report = msg.json<RunProgress>();
    if (!isSubjectToken(report.run_id) || !isSubjectToken(report.driver)) return;
    const step = this.running(this.runOf(report.run_id), report.driver);
    if (isEnded(step.state)) return;
    const { fraction, done, total, phase } = report;
    step.progress = { fraction: Math.min(1, Math.max(0, Number(fraction) || 0)), done, total, phase };
  }

  private onLog(msg: Msg): void {
    const [, , runId, driver] = msg.subject.split('.');
    const line = msg.json<ConveyorLog>();
    const run = this.runOf(runId);
    const step = this.running(run, driver);
    if (run.log_source === 'store' && isEnded(step.state)) return;
    run.logs.push({ driver, timestamp: String(line.timestamp), message: String(line.message) });
    if (run.logs.length > MAX_LOG_LINES) run.logs.splice(0, run.logs.length - MAX_LOG_LINES);
  }

  private onResult(msg: Msg): void {
    const event = msg.json<{
      run_id?: unknown;
      resource?: unknown;
      driverresult?: { success?: unknown; message?: unknown; driver?: unknown };
    }>();
    const result = event.driverresult;
    if (!isSubjectToken(event.run_id) || !result || !isSubjectToken(result.driver)) return;
    const run = this.runOf(event.run_id);
    this.describe(run, event.resource);
    const step = this.stepOf(run, result.driver);
    const message = typeof result.message === 'string' ? result.message : '';
    const now = new Date();
    step.state =
      result.success === true ? 'succeeded' : message.startsWith('cancelled: ') ? 'cancelled' : 'failed';
    step.message = message;
    step.ended_at = now.toISOString();
    // From dispatch: a driver's first line may trail its start, so the start seen here is no better.
    step.duration_ms = now.getTime() - Date.parse(step.queued_at);
    if (step.state === 'succeeded' && step.progress) step.progress.fraction = 1;
    // A failed step ends its pipeline (the engine does not go on): the later steps never run.
    if (step.state !== 'succeeded') run.steps = run.steps.filter((s) => s.state !== 'waiting');
    if (run.steps.every((s) => isEnded(s.state))) void this.loadStoredLogs(run);
  }

  /** Replaces the live lines with the stored ones once the run ended (when a store is known). */
  private async loadStoredLogs(run: ConsoleRun): Promise<void> {
    const read = this.sources.storedLogs;
    if (!read) return;
    await new Promise((resolve) => setTimeout(resolve, STORE_SETTLE_MS).unref());
    try {
      const stored = await abortable(read(run.run_id), undefined, NATS_WAIT_MS * 2);
      if (stored.ended !== 'done' || stored.value.length === 0) return;
      run.logs = stored.value
        .slice(-MAX_LOG_LINES)
        .map(({ driver, timestamp, message }) => ({ driver, timestamp, message }));
      run.log_source = 'store';
    } catch {
      /* the store is unreachable: the live lines stay */
    }
  }

  private onDeadLetter(msg: Msg): void {
    const h = (name: string) => msg.headers?.get(name) || undefined;
    const driver = h(DEAD_LETTER_HEADERS.driver);
    if (!driver) return;
    const id = `dl-${++this.deadLetterSeq}`;
    const seq = Number(h(DEAD_LETTER_HEADERS.streamSequence));
    this.deadLetters.set(id, {
      id,
      reason: h(DEAD_LETTER_HEADERS.reason) ?? '',
      driver,
      subject: h(DEAD_LETTER_HEADERS.subject) ?? '',
      run_id: h(DEAD_LETTER_HEADERS.runId),
      failed_at: h(DEAD_LETTER_HEADERS.failedAt) ?? new Date().toISOString(),
      ...(Number.isSafeInteger(seq) ? { stream_sequence: seq } : {}),
      event: decoder.decode(msg.data).slice(0, MAX_EVENT_CHARS),
      raw: msg.data,
    });
    if (this.deadLetters.size > MAX_DEAD_LETTERS)
      this.deadLetters.delete(this.deadLetters.keys().next().value!);
  }
}

/** A console request that cannot be served: its HTTP status and why. */
export class ConsoleRequestError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'ConsoleRequestError';
  }
}

function isEnded(state: ConsoleStepState): boolean {
  return state === 'succeeded' || state === 'failed' || state === 'cancelled';
}

function resourceTypeOf(payload: unknown): unknown {
  try {
    const resource = typeof payload === 'string' ? JSON.parse(payload) : payload;
    return (resource as { resource?: unknown })?.resource;
  } catch {
    return undefined;
  }
}
