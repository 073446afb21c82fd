import { randomUUID } from 'node:crypto';
import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Resource } from '../../conveyor/src/protocol';

/**
 * The resource routes of the Conveyor 0.6.x HTTP API (contract §10.1), in memory, faithful to the
 * server's quirks: a missing resource is **500** with "not found" text (the 404 branch is dead
 * code), DELETE is 204 whether or not the resource existed, unrouted paths get Fiber's 404 text.
 * Resources are seeded with {@link put}. It can be told to fail the next requests.
 */
export class ConveyorApiServer {
  private readonly store = new Map<string, Resource>();
  private failures: { status: number; remaining: number } | undefined;
  /** Every request seen, as `METHOD /path`. */
  readonly requests: string[] = [];

  private constructor(private readonly server: Server) {}

  static async start(port = 0): Promise<ConveyorApiServer> {
    const server = createServer();
    const api = new ConveyorApiServer(server);
    server.on('request', (req, res) => api.handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Stores a resource as the server would hold it (an `id` and `metadata.version` when missing). */
  put<Spec>(resource: Resource<Spec>): Resource<Spec> {
    const stored = {
      ...resource,
      id: resource.id ?? randomUUID(),
      metadata: resource.metadata ?? { version: '1' },
    };
    this.store.set(`${resource.resource}/${resource.name}`, stored);
    return stored;
  }

  remove(type: string, name: string): void {
    this.store.delete(`${type}/${name}`);
  }

  /** The next `times` requests answer `status` with a JSON error (e.g. 503 while "restarting"). */
  failNext(status: number, times = 1): void {
    this.failures = { status, remaining: times };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'http://x').pathname;
    this.requests.push(`${req.method} ${path}`);
    if (this.failures && this.failures.remaining > 0) {
      this.failures.remaining -= 1;
      return json(res, this.failures.status, { error: 'injected failure' });
    }
    if (req.method === 'GET' && path === '/health') {
      return json(res, 200, { status: 'healthy', time: Math.floor(Date.now() / 1000) });
    }
    const match = /^\/resources\/([^/]+)\/([^/]+)\/?$/.exec(path);
    if (match) {
      const [type, name] = [decodeURIComponent(match[1]), decodeURIComponent(match[2])];
      if (req.method === 'GET') {
        const found = this.store.get(`${type}/${name}`);
        return found
          ? json(res, 200, found)
          : json(res, 500, {
              error: `Failed to find resource: resource with name ${name} and type ${type} not found`,
            });
      }
      if (req.method === 'DELETE') {
        this.remove(type, name);
        res.writeHead(204).end();
        return;
      }
    }
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' }).end(`Cannot ${req.method} ${path}`);
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
}
