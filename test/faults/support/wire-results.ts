import { NatsConnection, connect } from 'nats';
import { RESULT_SUBJECT } from '@conveyor-ci/nestjs/internal';

/**
 * Results as they cross the wire, seen by one core subscription per node (drivers and tests must not
 * consume the engine's work queue: contract §5.1). A connection misses what is published while it is
 * itself reconnecting, so each run's count is the highest any one connection saw: a lower bound of
 * the publishes, exact while at least one node it watches stays up.
 */
export class WireResults {
  /** When each run's first result was seen, for the gaps without progress. */
  private readonly firstSeen = new Map<string, number>();
  private readonly counts: Map<string, number>[] = [];

  private constructor(private readonly connections: NatsConnection[]) {}

  static async open(urls: string[]): Promise<WireResults> {
    const connections = await Promise.all(
      urls.map((url) =>
        connect({
          servers: [url],
          maxReconnectAttempts: -1,
          reconnectTimeWait: 100,
          name: 'fault-suite results',
        }),
      ),
    );
    const wire = new WireResults(connections);
    for (const nc of connections) {
      const counts = new Map<string, number>();
      wire.counts.push(counts);
      nc.subscribe(RESULT_SUBJECT, {
        callback: (_err, msg) => {
          const runId = (JSON.parse(new TextDecoder().decode(msg.data)) as { run_id: string }).run_id;
          counts.set(runId, (counts.get(runId) ?? 0) + 1);
          if (!wire.firstSeen.has(runId)) wire.firstSeen.set(runId, Date.now());
        },
      });
      await nc.flush();
    }
    return wire;
  }

  /** Runs with at least one result seen. */
  get distinct(): number {
    return this.firstSeen.size;
  }

  /** Results seen beyond the first, per run, summed. */
  get duplicates(): number {
    let extra = 0;
    for (const runId of this.firstSeen.keys()) {
      extra += Math.max(...this.counts.map((c) => c.get(runId) ?? 0)) - 1;
    }
    return extra;
  }

  /** When the first result of the runs in `runIds` (or of any run) arrived after `since`. */
  firstAfter(since: number): number | undefined {
    let first: number | undefined;
    for (const at of this.firstSeen.values())
      if (at >= since && (first === undefined || at < first)) first = at;
    return first;
  }

  /** The longest time between `from` and the last new result with no new result, in ms. */
  longestGap(from: number): number {
    const times = [from, ...[...this.firstSeen.values()].filter((t) => t >= from).sort((a, b) => a - b)];
    let gap = 0;
    for (let i = 1; i < times.length; i++) gap = Math.max(gap, times[i] - times[i - 1]);
    return gap;
  }

  /** When the last new result arrived. */
  get lastAt(): number {
    return Math.max(0, ...this.firstSeen.values());
  }

  async close(): Promise<void> {
    await Promise.all(this.connections.map((nc) => nc.close()));
  }
}
