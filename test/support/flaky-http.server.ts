import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/** How one failing request fails. */
export type Failure = { status: number; body?: string } | 'reset' | 'hang';

/** A request as the server saw it. */
export interface SeenRequest {
  method: string;
  url: string;
  authorization?: string;
}

/**
 * A real HTTP server that fails its first requests as told (a status, a dropped connection, or no
 * answer at all), then answers `200 {"ok":true}` (204 for DELETE): for the client's retry and
 * timeout tests.
 */
export class FlakyHttpServer {
  readonly requests: SeenRequest[] = [];
  private failures: Failure[] = [];

  private constructor(private readonly server: Server) {}

  static async start(): Promise<FlakyHttpServer> {
    const server = createServer();
    const flaky = new FlakyHttpServer(server);
    server.on('request', (req, res) => flaky.handle(req, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return flaky;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** The next requests fail, one failure each, in order. */
  failNext(...failures: Failure[]): void {
    this.failures = failures;
    this.requests.length = 0;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push({
      method: req.method ?? '',
      url: req.url ?? '',
      authorization: req.headers.authorization,
    });
    req.resume();
    const failure = this.failures.shift();
    if (failure === 'hang') return; // closeAllConnections ends it
    if (failure === 'reset') {
      req.socket.destroy();
      return;
    }
    if (failure) {
      res.writeHead(failure.status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: failure.body ?? 'injected failure' }));
      return;
    }
    if (req.method === 'DELETE') return void res.writeHead(204).end();
    res.writeHead(200, { 'Content-Type': 'application/json' }).end('{"ok":true}');
  }
}
