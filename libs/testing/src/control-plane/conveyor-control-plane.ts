import { IncomingMessage, Server, ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { JetStreamManager, NatsConnection, connect } from 'nats';
import { ConsoleTracker, handleConsoleRequest, type Resource } from '@conveyor-ci/nestjs/internal';
import { createConveyorStreams } from '../conveyor-nats';
import { NatsServer, PortInUseError } from '../nats-server.harness';
import { fiberCors, fiberNotFound, handleApiRoute, readBody } from './api.routes';
import { ControlPlaneEngine } from './control-plane.engine';
import { ControlPlaneStore } from './control-plane.store';
import { send } from './fiber-http';
import { handleLogRoute } from './logs.routes';
import { natsTlsConfig, type TestPki } from '../test-pki';
import { ApiAuthVerifier, refuseUnauthorized } from './api-auth.verifier';

/** Options of {@link ConveyorControlPlane.start}. */
export interface ControlPlaneOptions {
  /** HTTP port; default a free one (the real server uses 8080). */
  apiPort?: number;
  /** Port of the nats-server it starts; default a free one (the real server uses 4222). */
  natsPort?: number;
  /** Interface the API listens on. Default 127.0.0.1. */
  host?: string;
  /** SSE heartbeat period. Default 15 000 ms, as the server. */
  heartbeatMs?: number;
  /** Called with a line per engine event (step dispatched, result received). */
  onEvent?: (line: string) => void;
  /**
   * Called when `POST /resources` starts a run (after its event is published), with the run id the
   * API answers and the stored resource: e.g. to print where the run's logs are.
   */
  onRun?: (runId: string, resource: Resource<unknown>) => void;
  /**
   * `api.auth_enabled: true`: NATS requires mutual TLS (`tls { verify: true }`) and every API route
   * but `/health`, `/swagger`, `/metrics` a proof-of-possession JWT, checked as the server does.
   * Certificates from {@link createTestPki}.
   */
  auth?: Pick<TestPki, 'ca' | 'serverCert' | 'serverKey' | 'clientCert' | 'clientKey'>;
  /**
   * Serve the run console (drivers, runs, logs, cancel, dead letters) at `path` (default
   * `/console`). Not part of the real server: off unless asked for (`npm run dev` and
   * `npm run conveyor:dev` ask). Served without the API's token check even with `auth`, since a
   * browser has no client certificate: the plane listens on loopback unless `host` says otherwise.
   */
  console?: { path?: string; deadLetterSubject?: string };
}

/**
 * A local Conveyor 0.6.x control plane, built from the wire contract: a real nats-server with the
 * server's three streams, its HTTP API (with the server's quirks), the pipeline engine and the logs
 * engine. For tests and for trying a driver without Docker (`npm run conveyor:dev`, `npm run dev`).
 */
export class ConveyorControlPlane {
  private constructor(
    /** What the server would keep in etcd and BadgerDB: inspect it in tests. */
    readonly store: ControlPlaneStore,
    readonly nats: NatsServer,
    readonly nc: NatsConnection,
    readonly jsm: JetStreamManager,
    private readonly engine: ControlPlaneEngine,
    private readonly http: Server,
    private readonly verifier?: ApiAuthVerifier,
    private readonly onRun?: ControlPlaneOptions['onRun'],
    private readonly console?: { path: string; tracker: ConsoleTracker },
  ) {}

  static async start(options: ControlPlaneOptions = {}): Promise<ConveyorControlPlane> {
    const { auth } = options;
    const nats = await NatsServer.start({
      port: options.natsPort,
      config: auth && natsTlsConfig(auth, true),
    });
    const nc = await connect({
      servers: nats.url,
      maxReconnectAttempts: -1,
      reconnectTimeWait: 100,
      ...(auth ? { tls: { caFile: auth.ca, certFile: auth.clientCert, keyFile: auth.clientKey } } : {}),
    });
    const jsm = await nc.jetstreamManager();
    await createConveyorStreams(jsm);
    const store = new ControlPlaneStore();
    const engine = new ControlPlaneEngine(nc, store, options.onEvent);
    await engine.start(jsm);
    const http = createServer();
    const verifier = auth && ApiAuthVerifier.fromCaFile(auth.ca);
    const consolePath =
      options.console && `/${(options.console.path ?? 'console').replace(/^\/+|\/+$/g, '')}`;
    const tracker =
      options.console &&
      new ConsoleTracker({
        connection: () => nc,
        deadLetterSubject: options.console.deadLetterSubject,
        storedLogs: async (runid) => store.queryLogs({ runid }),
        pipelineSteps: (name) => store.pipelines.get(name)?.steps.map((step) => step.driver),
      });
    // Watching from the start: every run submitted from now on is seen whole.
    tracker?.start();
    const plane = new ConveyorControlPlane(
      store,
      nats,
      nc,
      jsm,
      engine,
      http,
      verifier,
      options.onRun,
      consolePath && tracker ? { path: consolePath, tracker } : undefined,
    );
    const heartbeatMs = options.heartbeatMs ?? 15_000;
    http.on('request', (req, res) => void plane.handle(req, res, heartbeatMs));
    try {
      await new Promise<void>((resolve, reject) => {
        http.once('error', reject);
        http.listen(options.apiPort ?? 0, options.host ?? '127.0.0.1', resolve);
      });
    } catch (err) {
      // Nothing of a plane that cannot serve its API stays behind: its nats-server and store go too.
      await plane.stop().catch(() => undefined);
      throw (err as NodeJS.ErrnoException).code === 'EADDRINUSE'
        ? new PortInUseError(options.apiPort ?? 0, 'api')
        : err;
    }
    return plane;
  }

  get apiUrl(): string {
    const { port } = this.http.address() as AddressInfo;
    return `http://127.0.0.1:${port}`;
  }

  get natsUrl(): string {
    return this.nats.url;
  }

  /** The console's URL, when it is served (`console` option). */
  get consoleUrl(): string | undefined {
    return this.console && `${this.apiUrl}${this.console.path}/`;
  }

  /** Open HTTP connections (a log stream holds one until its client goes): tests check that a client frees them. */
  openConnections(): Promise<number> {
    return new Promise((resolve, reject) =>
      this.http.getConnections((err, count) => (err ? reject(err) : resolve(count))),
    );
  }

  /** What `POST /resources/` publishes after storing a resource; returns the run id. */
  publishResourceEvent(resource: Resource<unknown>): Promise<string> {
    return this.engine.publishResourceEvent(resource);
  }

  async stop(): Promise<void> {
    this.console?.tracker.close();
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
    await this.engine.stop();
    await this.nc.close();
    await this.nats.stop();
  }

  private async handle(req: IncomingMessage, res: ServerResponse, heartbeatMs: number): Promise<void> {
    try {
      // The console first: it is ours, not the server's, and gets none of its CORS headers (with
      // `Access-Control-Allow-Origin: *` any site could read the runs and logs it shows).
      if (await this.serveConsole(req, res)) return;
      // The server's middleware order: CORS, (Prometheus,) then the JWT check.
      if (fiberCors(req, res)) return;
      if (this.verifier && (await refuseUnauthorized(req, res, this.verifier))) return;
      const body = await readBody(req);
      if (await handleApiRoute(req, res, body, this.apiDeps())) return;
      if (handleLogRoute(req, res, body, { store: this.store, nc: this.nc, heartbeatMs })) return;
      if (req.method === 'GET' && new URL(req.url ?? '/', 'http://x').pathname === '/metrics') {
        send(res, 200, { 'Content-Type': 'text/plain; version=0.0.4' }, this.metrics());
        return;
      }
      fiberNotFound(req, res);
    } catch (err) {
      const body = JSON.stringify({ error: (err as Error).message });
      if (!res.headersSent) send(res, 500, { 'Content-Type': 'application/json' }, body);
      else res.end();
    }
  }

  /** The console's routes, when it is served and the path is below it. */
  private async serveConsole(req: IncomingMessage, res: ServerResponse): Promise<boolean> {
    if (!this.console) return false;
    const { path, tracker } = this.console;
    const pathname = new URL(req.url ?? '/', 'http://x').pathname;
    if (pathname !== path && !pathname.startsWith(`${path}/`)) return false;
    const raw = await readBody(req);
    let body: unknown;
    try {
      body = raw.length > 0 ? JSON.parse(raw.toString('utf8')) : undefined;
    } catch {
      send(res, 400, { 'Content-Type': 'application/json' }, JSON.stringify({ error: 'body is not JSON' }));
      return true;
    }
    const answer = await handleConsoleRequest(tracker, path, {
      method: req.method ?? 'GET',
      path: pathname.slice(path.length),
      body,
      headers: req.headers,
    });
    if (!answer)
      send(
        res,
        404,
        { 'Content-Type': 'application/json' },
        JSON.stringify({ error: 'no such console route' }),
      );
    else send(res, answer.status, answer.headers, answer.body);
    return true;
  }

  private apiDeps() {
    return {
      store: this.store,
      publishResourceEvent: async (resource: Resource<unknown>) => {
        const runId = await this.publishResourceEvent(resource);
        this.onRun?.(runId, resource);
        return runId;
      },
      publishCore: (subject: string, data: string) => this.nc.publish(subject, data),
    };
  }

  private metrics(): string {
    return [
      '# HELP conveyor_dev_resources Resources stored by the local control plane',
      '# TYPE conveyor_dev_resources gauge',
      `conveyor_dev_resources ${this.store.resources.size}`,
      '',
    ].join('\n');
  }
}
