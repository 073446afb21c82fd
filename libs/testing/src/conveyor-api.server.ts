import { randomUUID } from 'node:crypto';
import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Resource } from '@conveyor-ci/nestjs/internal';
import { fiberNotFound, handleApiRoute, readBody } from './control-plane/api.routes';
import { ControlPlaneStore } from './control-plane/control-plane.store';

/**
 * The Conveyor 0.6.x HTTP API (contract §10.1) without NATS: the control plane's routes and quirks
 * (500 for a missing resource, 204 DELETE, Fiber's 404 text) over an in-memory store, for client
 * tests that need no broker. Anything that would publish answers 500 as the server does when its
 * publish fails. Resources are seeded with {@link put}; it can be told to fail the next requests.
 */
export class ConveyorApiServer {
  private readonly store = new ControlPlaneStore();
  private failures: { status: number; remaining: number } | undefined;
  /** Every request seen, as `METHOD /path`. */
  readonly requests: string[] = [];

  private constructor(private readonly server: Server) {}

  static async start(port = 0): Promise<ConveyorApiServer> {
    const server = createServer();
    const api = new ConveyorApiServer(server);
    server.on('request', (req, res) => void api.handle(req, res));
    await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve));
    return api;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Stores a resource as the server would hold it (an `id` and `metadata.version` when missing). */
  put<Spec>(resource: Resource<Spec>): Resource<Spec> {
    this.store.putResource({
      ...resource,
      id: resource.id ?? randomUUID(),
      metadata: resource.metadata ?? { version: '1' },
    });
    return this.store.getResource(resource.resource, resource.name) as Resource<Spec>;
  }

  remove(type: string, name: string): void {
    this.store.deleteResource(type, name);
  }

  /** The next `times` requests answer `status` with a JSON error (e.g. 503 while "restarting"). */
  failNext(status: number, times = 1): void {
    this.failures = { status, remaining: times };
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.requests.push(`${req.method} ${new URL(req.url ?? '/', 'http://x').pathname}`);
    if (this.failures && this.failures.remaining > 0) {
      this.failures.remaining -= 1;
      res
        .writeHead(this.failures.status, { 'Content-Type': 'application/json' })
        .end(JSON.stringify({ error: 'injected failure' }));
      return;
    }
    const noNats = () => {
      throw new Error('nats: no NATS behind this API server');
    };
    const deps = { store: this.store, publishResourceEvent: async () => noNats(), publishCore: noNats };
    if (!(await handleApiRoute(req, res, await readBody(req), deps))) fiberNotFound(req, res);
  }
}
