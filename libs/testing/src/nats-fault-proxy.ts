import { AddressInfo, Server, Socket, createServer, connect as tcpConnect } from 'node:net';

/** A message the server sent to a client (`MSG`/`HMSG`), or a client's publish, as the proxy sees it. */
export interface ProxiedMessage {
  subject: string;
  /** Body bytes (after the headers for `HMSG`), decoded as UTF-8. */
  body: string;
}

interface DropRule {
  match: (m: ProxiedMessage) => boolean;
  remaining: number;
  dropped: ProxiedMessage[];
}

interface RewriteRule {
  subject: (subject: string) => boolean;
  rewrite: (body: string) => string;
  remaining: number;
  rewritten: string[];
}

/**
 * A TCP proxy in front of a real nats-server that can lose chosen server-to-client messages, e.g.
 * a JetStream PubAck, to test what a client does when an acknowledgement never arrives. It parses
 * the NATS protocol only far enough to find message frame boundaries; everything else passes as is.
 */
export class NatsFaultProxy {
  private readonly sockets = new Set<Socket>();
  private readonly rules: DropRule[] = [];
  private readonly publishRules: DropRule[] = [];
  private readonly rewrites: RewriteRule[] = [];

  private constructor(
    private readonly server: Server,
    private readonly targetPort: number,
  ) {}

  /** Listens on a free loopback port and forwards to `127.0.0.1:targetPort`. */
  static async start(targetPort: number): Promise<NatsFaultProxy> {
    const server = createServer();
    const proxy = new NatsFaultProxy(server, targetPort);
    server.on('connection', (client) => proxy.accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    return `nats://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Drops the next `count` server-to-client messages that `match`; `dropped` lists them as they go. */
  drop(match: (m: ProxiedMessage) => boolean, count = 1): { dropped: ProxiedMessage[] } {
    const rule: DropRule = { match, remaining: count, dropped: [] };
    this.rules.push(rule);
    return rule;
  }

  /**
   * Drops the next `count` client publishes (`PUB`/`HPUB`) that `match`, as if lost on the way to
   * the server (a cluster's stream leader changing drops publishes like this, without a word).
   */
  dropPublishes(match: (m: ProxiedMessage) => boolean, count = 1): { dropped: ProxiedMessage[] } {
    const rule: DropRule = { match, remaining: count, dropped: [] };
    this.publishRules.push(rule);
    return rule;
  }

  /**
   * Rewrites the body of the next `count` client publishes (`PUB`, no headers) whose subject
   * matches, e.g. a pull request asking for more messages than the client meant to.
   */
  rewritePublishes(
    subject: (subject: string) => boolean,
    rewrite: (body: string) => string,
    count = 1,
  ): { rewritten: string[] } {
    const rule: RewriteRule = { subject, rewrite, remaining: count, rewritten: [] };
    this.rewrites.push(rule);
    return rule;
  }

  /** Closes every proxied connection (clients see a disconnect and reconnect through the proxy). */
  cutConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    this.cutConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private accept(client: Socket): void {
    const upstream = tcpConnect(this.targetPort, '127.0.0.1');
    this.sockets.add(client).add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.sockets.delete(client);
      this.sockets.delete(upstream);
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
    let outbound = Buffer.alloc(0);
    client.on('data', (chunk: Buffer) => {
      outbound = Buffer.concat([outbound, chunk]);
      let frame: number;
      while ((frame = frameLength(outbound, CLIENT_BODIES)) > 0) {
        const bytes = outbound.subarray(0, frame);
        outbound = outbound.subarray(frame);
        if (!this.matches(this.publishRules, bytes)) upstream.write(this.rewritten(bytes));
      }
    });
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      let frame: number;
      while ((frame = frameLength(pending)) > 0) {
        const bytes = pending.subarray(0, frame);
        pending = pending.subarray(frame);
        if (!this.matches(this.rules, bytes)) client.write(bytes);
      }
    });
  }

  private rewritten(frame: Buffer): Buffer {
    if (this.rewrites.every((r) => r.remaining <= 0)) return frame;
    const eol = frame.indexOf('\r\n');
    const parts = frame.subarray(0, eol).toString().trim().split(/\s+/);
    if (parts[0].toUpperCase() !== 'PUB') return frame;
    const rule = this.rewrites.find((r) => r.remaining > 0 && r.subject(parts[1]));
    if (!rule) return frame;
    rule.remaining -= 1;
    const body = rule.rewrite(frame.subarray(eol + 2, frame.length - 2).toString());
    rule.rewritten.push(body);
    const head = [...parts.slice(0, -1), String(Buffer.byteLength(body))].join(' ');
    return Buffer.from(`${head}\r\n${body}\r\n`);
  }

  /** True when `frame` is a message one of `rules` drops (and counts it there). */
  private matches(rules: DropRule[], frame: Buffer): boolean {
    if (rules.every((r) => r.remaining <= 0)) return false;
    const message = parseMessage(frame);
    if (!message) return false;
    const rule = rules.find((r) => r.remaining > 0 && r.match(message));
    if (!rule) return false;
    rule.remaining -= 1;
    rule.dropped.push(message);
    return true;
  }
}

/** Operations that carry a body: the server's messages, and the client's publishes. */
const SERVER_BODIES = new Set(['MSG', 'HMSG']);
const CLIENT_BODIES = new Set(['PUB', 'HPUB']);

/**
 * Length of the first complete protocol frame in `buf`, or 0 when it is not complete yet. Every
 * operation with a body ends its line with the total byte count:
 * `MSG <subject> <sid> [reply] <#bytes>`, `HMSG … <#header bytes> <#total bytes>`, `PUB`/`HPUB` alike.
 */
function frameLength(buf: Buffer, withBody = SERVER_BODIES): number {
  const eol = buf.indexOf('\r\n');
  if (eol < 0) return 0;
  const line = buf.subarray(0, eol).toString();
  if (!withBody.has(line.split(' ', 1)[0].toUpperCase())) return eol + 2;
  const length = eol + 2 + Number(line.trim().split(/\s+/).pop()) + 2;
  return buf.length >= length ? length : 0;
}

/** A message frame of either side (`MSG`/`HMSG` from the server, `PUB`/`HPUB` from a client). */
function parseMessage(frame: Buffer): ProxiedMessage | undefined {
  const eol = frame.indexOf('\r\n');
  const parts = frame.subarray(0, eol).toString().trim().split(/\s+/);
  const op = parts[0].toUpperCase();
  if (!SERVER_BODIES.has(op) && !CLIENT_BODIES.has(op)) return undefined;
  const total = Number(parts[parts.length - 1]);
  const headerBytes = op === 'HMSG' || op === 'HPUB' ? Number(parts[parts.length - 2]) : 0;
  const payload = frame.subarray(eol + 2, eol + 2 + total);
  return { subject: parts[1], body: payload.subarray(headerBytes).toString() };
}
