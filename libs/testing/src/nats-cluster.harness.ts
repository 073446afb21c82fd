import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { JetStreamManager } from 'nats';
import { sleep } from './eventually';
import { NatsServer, freePort } from './nats-server.harness';
import { registerSpawned } from './process-registry';

/** Options of {@link NatsCluster.start}. */
export interface NatsClusterOptions {
  /** Nodes; default 3 (the smallest cluster that keeps a quorum with one node down). */
  size?: number;
  /** `cluster.name`; default `conveyor-test`. */
  name?: string;
  /** Binary; default `findNatsServer()`. */
  binary?: string;
  /** `max_payload` of every node; default nats-server's 1 MiB. */
  maxPayload?: number;
  /** How long {@link NatsCluster.start} waits for the JetStream meta leader; default 30 s. */
  readyTimeoutMs?: number;
}

/** One node of a {@link NatsCluster}: its server, its `server_name` and its monitoring port. */
export interface NatsClusterNode {
  /** `server_name`, as stream and meta leaders are reported (`n1`, `n2`…). */
  readonly name: string;
  readonly server: NatsServer;
  /** HTTP monitoring port (`/jsz`, `/connz`) on 127.0.0.1. */
  readonly monitorPort: number;
}

/** What `/jsz` of one node says about the JetStream meta group. */
interface MetaCluster {
  leader?: string;
  replicas?: { name: string; current: boolean; offline?: boolean }[];
}

/**
 * A real nats-server cluster on loopback: every node with its own `server_name`, file store, client
 * port, route port and monitoring port, routes to all the others, and JetStream clustered (streams
 * with `num_replicas: 3` are Raft groups across the nodes, as in a production Conveyor behind a NATS
 * cluster). Nodes can be stopped, SIGKILLed, SIGSTOPped and restarted on the same ports and store.
 *
 * @example
 * ```ts
 * const cluster = await NatsCluster.start();
 * const nc = await connect({ servers: cluster.urls });
 * await createConveyorStreams(await nc.jetstreamManager(), { replicas: 3 });
 * await cluster.waitForStreamLeader(jsm, 'messages');
 * const leader = await cluster.streamLeader(jsm, 'messages');
 * await leader.server.halt('SIGKILL'); // …later: await cluster.restart(leader)
 * ```
 */
export class NatsCluster {
  private constructor(
    readonly nodes: readonly NatsClusterNode[],
    private readonly root: string,
  ) {}

  /** Starts every node and resolves once they agree on a JetStream meta leader. */
  static async start(options: NatsClusterOptions = {}): Promise<NatsCluster> {
    const size = options.size ?? 3;
    if (!Number.isInteger(size) || size < 1) throw new TypeError(`cluster size must be >= 1, got ${size}`);
    const root = mkdtempSync(join(tmpdir(), 'conveyor-nats-cluster-'));
    registerSpawned({ dir: root });
    const ports = await uniquePorts(size * 3);
    const plan = Array.from({ length: size }, (_, i) => ({
      name: `n${i + 1}`,
      client: ports[i * 3],
      route: ports[i * 3 + 1],
      monitor: ports[i * 3 + 2],
    }));
    const nodes: NatsClusterNode[] = [];
    try {
      // One after the other ("ready" comes before the routes are up, so this costs little): nodes
      // started at the same instant now and then left one of them out of the meta group.
      for (const node of plan) {
        const storeDir = join(root, node.name);
        mkdirSync(storeDir, { recursive: true });
        const routes = plan.filter((o) => o !== node).map((o) => `nats-route://127.0.0.1:${o.route}`);
        const server = await NatsServer.start({
          binary: options.binary,
          port: node.client,
          storeDir,
          maxPayload: options.maxPayload,
          config: [
            `server_name: ${node.name}`,
            `http: "127.0.0.1:${node.monitor}"`,
            `cluster { name: "${options.name ?? 'conveyor-test'}", listen: "127.0.0.1:${node.route}", routes: [${routes.map((r) => `"${r}"`).join(', ')}] }`,
          ].join('\n'),
        });
        nodes.push({ name: node.name, server, monitorPort: node.monitor });
      }
    } catch (err) {
      await Promise.all(nodes.map((n) => n.server.halt('SIGKILL')));
      rmSync(root, { recursive: true, force: true });
      throw err;
    }
    const cluster = new NatsCluster(nodes, root);
    const timeoutMs = options.readyTimeoutMs ?? 30_000;
    // Healthy, the group forms in well under a second. About one start in six (nats-server 2.10,
    // loaded 2-core machine), a fresh node stays out of it for good: restart whoever is left out.
    const firstWaitMs = Math.min(8000, timeoutMs / 2);
    try {
      await cluster.waitForMetaLeader(firstWaitMs);
    } catch {
      for (const node of await cluster.outsideMetaGroup()) await node.server.restart();
      await cluster.waitForMetaLeader(timeoutMs - firstWaitMs);
    }
    return cluster;
  }

  /** Client URLs of every node: give a driver all of them (`CONVEYOR_NATS_URL` comma-separated). */
  get urls(): string[] {
    return this.nodes.map((n) => n.server.url);
  }

  /** The node called `name` (`server_name`). */
  node(name: string): NatsClusterNode {
    const node = this.nodes.find((n) => n.name === name);
    if (!node)
      throw new Error(`no cluster node named "${name}" (nodes: ${this.nodes.map((n) => n.name).join(', ')})`);
    return node;
  }

  /** The running nodes. */
  get runningNodes(): NatsClusterNode[] {
    return this.nodes.filter((n) => n.server.running);
  }

  /**
   * Waits until every running node reports the same JetStream meta leader and that leader sees every
   * running node as a current peer; returns the leader's name. Until then JetStream API calls fail
   * with "JetStream system temporarily unavailable".
   */
  async waitForMetaLeader(timeoutMs = 30_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer yet';
    for (;;) {
      const running = this.runningNodes;
      const metas = await Promise.all(running.map((n) => this.meta(n).catch(() => undefined)));
      const leaders = new Set(metas.map((m) => m?.leader));
      const [leader] = leaders;
      if (leaders.size === 1 && leader) {
        const leaderMeta = metas[running.findIndex((n) => n.name === leader)];
        const peersCurrent = running
          .filter((n) => n.name !== leader)
          .every((n) => leaderMeta?.replicas?.some((r) => r.name === n.name && r.current && !r.offline));
        if (leaderMeta && peersCurrent) return leader;
        last = `leader ${leader}, peers not all current: ${JSON.stringify(leaderMeta?.replicas ?? [])}`;
      } else last = `leaders reported: ${JSON.stringify([...leaders])}`;
      if (Date.now() > deadline) throw new Error(`no JetStream meta leader in ${timeoutMs} ms (${last})`);
      await sleep(200);
    }
  }

  /**
   * Waits until `stream` has a leader and every replica on a running node is current (caught up),
   * so a node can be killed without losing the quorum's data; returns the leader node.
   */
  async waitForStreamLeader(
    jsm: JetStreamManager,
    stream: string,
    timeoutMs = 30_000,
  ): Promise<NatsClusterNode> {
    const deadline = Date.now() + timeoutMs;
    let last = 'no answer yet';
    for (;;) {
      try {
        const { cluster } = await jsm.streams.info(stream);
        const running = new Set(this.runningNodes.map((n) => n.name));
        const lagging = (cluster?.replicas ?? []).filter(
          (r) => running.has(r.name) && (!r.current || r.offline),
        );
        if (cluster?.leader && running.has(cluster.leader) && lagging.length === 0)
          return this.node(cluster.leader);
        last = `leader ${cluster?.leader ?? 'none'}, lagging ${JSON.stringify(lagging.map((r) => r.name))}`;
      } catch (err) {
        last = (err as Error).message;
      }
      if (Date.now() > deadline)
        throw new Error(`stream "${stream}" has no current leader in ${timeoutMs} ms (${last})`);
      await sleep(200);
    }
  }

  /** The node that leads `stream` now. */
  async streamLeader(jsm: JetStreamManager, stream: string): Promise<NatsClusterNode> {
    const { cluster } = await jsm.streams.info(stream);
    if (!cluster?.leader) throw new Error(`stream "${stream}" has no leader`);
    return this.node(cluster.leader);
  }

  /**
   * The node a client connection named `connectionName` is attached to (from each node's `/connz`),
   * e.g. `Conveyor Driver Manager - shell-runner`; undefined while it is not connected.
   */
  async nodeOfConnection(connectionName: string): Promise<NatsClusterNode | undefined> {
    for (const node of this.runningNodes) {
      const connz = (await this.monitor(node, '/connz?limit=1024').catch(() => undefined)) as
        { connections?: { name?: string }[] } | undefined;
      if (connz?.connections?.some((c) => c.name === connectionName)) return node;
    }
    return undefined;
  }

  /**
   * Starts a stopped node again (same ports and store) and waits until it is back in the meta group.
   * A node SIGKILLed under load once stayed out of it although running (the leader had not heard
   * from it for 70 s, in a CI run of fault case 2): after half the time it is started once more.
   */
  async restart(node: NatsClusterNode, timeoutMs = 30_000): Promise<void> {
    await node.server.resume();
    try {
      await this.waitForMetaLeader(timeoutMs / 2);
    } catch (first) {
      process.stderr.write(`${node.name} not back in the meta group, starting it again: ${String(first)}\n`);
      await node.server.restart('SIGTERM');
      await this.waitForMetaLeader(timeoutMs / 2);
    }
  }

  /** Stops every node and removes the stores. */
  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.server.stop()));
    rmSync(this.root, { recursive: true, force: true });
  }

  /** Running nodes the meta leader does not list as current peers (all of them when there is no leader). */
  private async outsideMetaGroup(): Promise<NatsClusterNode[]> {
    const running = this.runningNodes;
    const metas = await Promise.all(running.map((n) => this.meta(n).catch(() => undefined)));
    const leader = metas.find((m) => m?.leader)?.leader;
    const leaderMeta = metas[running.findIndex((n) => n.name === leader)];
    if (!leaderMeta) return running;
    return running.filter(
      (n) => n.name !== leader && !leaderMeta.replicas?.some((r) => r.name === n.name && r.current),
    );
  }

  private meta(node: NatsClusterNode): Promise<MetaCluster | undefined> {
    return this.monitor(node, '/jsz').then((jsz) => (jsz as { meta_cluster?: MetaCluster }).meta_cluster);
  }

  private async monitor(node: NatsClusterNode, path: string): Promise<unknown> {
    const response = await fetch(`http://127.0.0.1:${node.monitorPort}${path}`, {
      signal: AbortSignal.timeout(2000),
    });
    if (!response.ok) throw new Error(`${path} on ${node.name}: HTTP ${response.status}`);
    return response.json();
  }
}

/** `count` distinct free ports (asked one by one, the kernel could hand out one twice). */
async function uniquePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}
