import { IncomingMessage, Server, ServerResponse, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * How one request is spoilt on its way through the proxy. The default forwards it, so the server
 * applies it, and then keeps the answer from the client: the "late answer" a client timeout turns
 * into an error although the server did the work.
 */
export interface ProxyFault {
  /** `false`: the request is lost on the way, the server never sees it. Default true. */
  forward?: boolean;
  /**
   * What the client gets once the server answered: `'never'` (held until the proxy closes; the
   * client's timeout ends the wait), `'drop'` (its connection reset) or the answer after `afterMs`.
   * Default `'never'`.
   */
  answer?: 'never' | 'drop' | { afterMs: number };
  /** Runs after the server answered and before the client hears anything: e.g. the engine writing a result. */
  meanwhile?: () => unknown;
}

/** A request as the proxy saw it, and whether it reached the server. */
export interface ProxiedRequest {
  method: string;
  url: string;
  forwarded: boolean;
}

/**
 * A real HTTP proxy in front of a real server (the local control plane) that spoils chosen requests
 * after the server handled them: for the client's "did my request happen?" cases, where what counts
 * is what the server stored, not what the client was told. Requests without a fault pass through.
 */
export class LateAnswerProxy {
  readonly requests: ProxiedRequest[] = [];
  private readonly faults: { method: string; fault: ProxyFault }[] = [];

  private constructor(
    private readonly server: Server,
    private readonly upstream: URL,
  ) {}

  static async start(upstreamUrl: string): Promise<LateAnswerProxy> {
    const server = createServer();
    const proxy = new LateAnswerProxy(server, new URL(upstreamUrl));
    server.on('request', (req, res) => void proxy.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The next request with `method` meets `fault` (queued: one fault per request, in order). */
  spoilNext(method: string, fault: ProxyFault = {}): void {
    this.faults.push({ method, fault });
  }

  /** How many `method` requests reached the proxy (`forwarded`: the server). */
  count(method: string, which: 'seen' | 'forwarded' = 'seen'): number {
    return this.requests.filter((r) => r.method === method && (which === 'seen' || r.forwarded)).length;
  }

  /** Forgets the requests seen and the faults not used yet. */
  reset(): void {
    this.requests.length = 0;
    this.faults.length = 0;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const index = this.faults.findIndex((f) => f.method === req.method);
    const fault = index >= 0 ? this.faults.splice(index, 1)[0].fault : undefined;
    const forward = fault?.forward !== false;
    this.requests.push({ method: req.method ?? '', url: req.url ?? '', forwarded: forward });
    const body = await readBody(req);
    if (!forward) return; // lost on the way: the client waits for an answer that never comes
    const answer = await this.forward(req, body);
    if (!fault) return void res.writeHead(answer.status, answer.headers).end(answer.body);
    await fault.meanwhile?.();
    const how = fault.answer ?? 'never';
    if (how === 'never') return; // closeAllConnections ends it
    if (how === 'drop') return void req.socket.destroy();
    setTimeout(() => {
      if (!res.destroyed) res.writeHead(answer.status, answer.headers).end(answer.body);
    }, how.afterMs);
  }

  private forward(
    req: IncomingMessage,
    body: Buffer,
  ): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
    return new Promise((resolve, reject) => {
      const upstream = request(
        {
          host: this.upstream.hostname,
          port: this.upstream.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: this.upstream.host, connection: 'close' },
        },
        (res) => {
          void readBody(res).then(
            (data) => resolve({ status: res.statusCode ?? 502, headers: res.headers, body: data }),
            reject,
          );
        },
      );
      upstream.on('error', reject);
      upstream.end(body);
    });
  }
}

async function readBody(stream: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}
