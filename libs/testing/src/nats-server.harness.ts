import { ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { killOnExit, registerSpawned } from './process-registry';

/** Oldest nats-server the harness accepts: multi-filter consumers need 2.10, and Debian trixie ships 2.10.27. */
export const MIN_NATS_SERVER_VERSION = '2.10.27';

function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Version printed by `binary --version`, or undefined when it does not run. */
export function natsServerVersion(binary: string): string | undefined {
  try {
    return /v(\d+\.\d+\.\d+)/.exec(execFileSync(binary, ['--version'], { encoding: 'utf8' }))?.[1];
  } catch {
    return undefined;
  }
}

function candidates(): string[] {
  const list: string[] = [];
  if (process.env.NATS_SERVER_BIN) list.push(process.env.NATS_SERVER_BIN);
  // `.tools/` of this repo (scripts/install-nats-server.sh), found from the cwd or from this file.
  for (let dir = process.cwd(), up = __dirname; ;) {
    list.push(
      join(dir, '.tools/nats-server/usr/sbin/nats-server'),
      join(up, '.tools/nats-server/usr/sbin/nats-server'),
    );
    if (dirname(dir) === dir && dirname(up) === up) break;
    dir = dirname(dir);
    up = dirname(up);
  }
  for (const dir of (process.env.PATH ?? '').split(delimiter)) if (dir) list.push(join(dir, 'nats-server'));
  return [...new Set(list)];
}

/**
 * Finds a nats-server >= {@link MIN_NATS_SERVER_VERSION}: `NATS_SERVER_BIN`, the repo's `.tools/`, then PATH.
 * @throws naming every binary that was too old, and how to install a suitable one.
 */
export function findNatsServer(): { binary: string; version: string } {
  const tooOld: string[] = [];
  for (const binary of candidates()) {
    if (!existsSync(binary)) continue;
    const version = natsServerVersion(binary);
    if (!version) continue;
    if (compareVersions(version, MIN_NATS_SERVER_VERSION) >= 0) return { binary, version };
    tooOld.push(`${binary} is ${version}`);
  }
  throw new Error(
    `no nats-server >= ${MIN_NATS_SERVER_VERSION} found${tooOld.length ? ` (${tooOld.join('; ')}: too old, no multi-filter consumers)` : ''}. ` +
      'Run `npm run nats:install` or set NATS_SERVER_BIN.',
  );
}

function assertNewEnough(binary: string): void {
  const version = natsServerVersion(binary);
  if (!version || compareVersions(version, MIN_NATS_SERVER_VERSION) < 0) {
    throw new Error(
      `${binary} is nats-server ${version ?? '(unknown version)'}: too old, need >= ${MIN_NATS_SERVER_VERSION} (multi-filter consumers). ` +
        'Run `npm run nats:install` or set NATS_SERVER_BIN.',
    );
  }
}

/** A free TCP port on loopback (the kernel picks it; a race with another process is possible but rare). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface NatsServerOptions {
  /** Port to listen on; default a free one. */
  port?: number;
  /** JetStream store dir; default a new temp dir, removed by `stop()`. */
  storeDir?: string;
  /** Binary; default {@link findNatsServer}. */
  binary?: string;
  /** Largest message the server accepts (`max_payload`); default nats-server's 1 MiB. */
  maxPayload?: number;
  /**
   * More server configuration, in nats-server's config syntax: `authorization { … }`, `accounts`,
   * `tls { … }`, `operator` + `resolver: MEMORY`, `server_name`, a `cluster` block… written to a file
   * next to the store with the `jetstream { store_dir }` block; the address and port flags still win.
   * Change it later with {@link NatsServer.reload}.
   */
  config?: string;
}

/**
 * The config file the harness writes: JetStream, limits and the caller's blocks. JetStream goes in
 * the file, not in `-js`: a reload compares the file with the running config and would shut down a
 * JetStream enabled only by the flag.
 */
function configText(storeDir: string, options: Pick<NatsServerOptions, 'maxPayload' | 'config'>): string {
  const lines: string[] = [`jetstream { store_dir: ${JSON.stringify(storeDir)} }`];
  if (options.maxPayload !== undefined) lines.push(`max_payload: ${Math.floor(options.maxPayload)}`);
  if (options.config) lines.push(options.config);
  return `${lines.join('\n')}\n`;
}

/**
 * A real nats-server with JetStream on loopback, for tests and local runs. Restartable on the same
 * port and store (file storage survives a restart, like a real deployment).
 */
export class NatsServer {
  private child?: ChildProcess;
  private exited?: Promise<void>;
  /** The last lines the server printed (its errors when a reload fails). */
  private stderrTail = '';
  private reloads = { done: 0, failed: 0 };

  private constructor(
    readonly binary: string,
    readonly port: number,
    readonly storeDir: string,
    private readonly ownsStore: boolean,
    private readonly extraArgs: string[] = [],
  ) {}

  static async start(options: NatsServerOptions = {}): Promise<NatsServer> {
    const binary = options.binary ?? findNatsServer().binary;
    if (options.binary) assertNewEnough(options.binary);
    const storeDir = options.storeDir ?? mkdtempSync(join(tmpdir(), 'conveyor-nats-'));
    const extraArgs: string[] = [];
    if (options.maxPayload !== undefined || options.config) {
      // max_payload and the auth/TLS blocks have no command-line flags: they go in a config file next to the store.
      const file = join(storeDir, 'server.conf');
      writeFileSync(file, configText(storeDir, options));
      extraArgs.push('-c', file);
    }
    const server = new NatsServer(
      binary,
      // 0 means any free port, as for a listening socket.
      options.port || (await freePort()),
      storeDir,
      !options.storeDir,
      extraArgs,
    );
    if (server.ownsStore) registerSpawned({ dir: storeDir });
    try {
      await server.boot();
    } catch (err) {
      // A server that never came up leaves no store behind (nor a process).
      if (server.ownsStore) rmSync(storeDir, { recursive: true, force: true });
      throw err;
    }
    return server;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  private async boot(): Promise<void> {
    const child = spawn(
      this.binary,
      [
        ...this.extraArgs,
        '-a',
        '127.0.0.1',
        '-p',
        String(this.port),
        ...(this.extraArgs.includes('-c') ? [] : ['-js', '-sd', this.storeDir]),
      ],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    this.child = child;
    registerSpawned({ pid: child.pid });
    const forget = killOnExit(child);
    this.exited = new Promise((resolve) =>
      child.once('exit', () => {
        forget();
        resolve();
      }),
    );
    let log = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      const text = chunk.toString();
      this.stderrTail = (this.stderrTail + text).slice(-8000);
      if (text.includes('Reloaded server configuration')) this.reloads.done += 1;
      if (text.includes('Failed to reload server configuration')) this.reloads.failed += 1;
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`nats-server did not become ready in 15 s:\n${log}`)),
        15_000,
      );
      child.stderr!.on('data', (chunk: Buffer) => {
        log = (log + chunk.toString()).slice(-4000);
        if (log.includes('Server is ready')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(startFailure(this.port, code, signal, log));
      });
    });
    child.stderr!.resume();
  }

  /**
   * Rewrites the server's config blocks and reloads them without a restart (SIGHUP, what
   * `nats-server --signal reload` sends): clients stay connected unless the new auth refuses them.
   * @throws when the server refuses the new configuration (its own error text).
   */
  async reload(config: string, options: Pick<NatsServerOptions, 'maxPayload'> = {}): Promise<void> {
    const index = this.extraArgs.indexOf('-c');
    if (index < 0) throw new Error('reload needs a server started with `config` (or `maxPayload`)');
    writeFileSync(this.extraArgs[index + 1], configText(this.storeDir, { ...options, config }));
    const before = { ...this.reloads };
    this.child!.kill('SIGHUP');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      if (this.reloads.done > before.done) return;
      if (this.reloads.failed > before.failed)
        throw new Error(`nats-server refused the new configuration:\n${this.stderrTail.slice(-1000)}`);
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`nats-server did not reload in 10 s:\n${this.stderrTail.slice(-1000)}`);
  }

  /** Stops the server (SIGTERM: a clean JetStream shutdown; SIGKILL: a crash). Keeps the store. */
  async halt(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.running) return;
    this.child!.kill(signal);
    await this.exited;
  }

  /** Process id while running. */
  get pid(): number | undefined {
    return this.running ? this.child!.pid : undefined;
  }

  /**
   * SIGSTOP: the process stays, its sockets stay open, and nothing answers (a stalled node, not a
   * dead one: clients only notice through missed pings). {@link thaw} continues it.
   */
  freeze(): void {
    if (this.running) this.child!.kill('SIGSTOP');
  }

  /** SIGCONT after {@link freeze}. */
  thaw(): void {
    if (this.running) this.child!.kill('SIGCONT');
  }

  /** Starts a halted server again on the same port and store. */
  async resume(): Promise<void> {
    if (!this.running) await this.boot();
  }

  /** Starts again on the same port and store. */
  async restart(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    await this.halt(signal);
    await this.boot();
  }

  /** Stops the server and removes the store it created. */
  async stop(): Promise<void> {
    this.thaw(); // a frozen server would never act on the SIGTERM
    await this.halt('SIGTERM');
    if (this.ownsStore) rmSync(this.storeDir, { recursive: true, force: true });
  }
}

/** Thrown when a local server (nats-server, the control plane's API) cannot listen: its port is taken. */
export class PortInUseError extends Error {
  constructor(
    readonly port: number,
    readonly service: 'nats' | 'api',
  ) {
    super(
      `port ${port} is already in use: the local ${service === 'nats' ? 'nats-server' : 'API'} cannot listen there`,
    );
    this.name = 'PortInUseError';
  }
}

/**
 * Why nats-server exited before it was ready: its fatal line (`[FTL] ...`) rather than the whole
 * 25-line banner, and a port conflict as its own error so a tool can name the setting that moves it.
 */
function startFailure(port: number, code: number | null, signal: string | null, log: string): Error {
  if (/address already in use/.test(log)) return new PortInUseError(port, 'nats');
  const fatal = log.split('\n').find((line) => line.includes('[FTL]'));
  const why = fatal ? fatal.replace(/^.*\[FTL\]\s*/, '') : `code ${code}, signal ${signal}`;
  return new Error(`nats-server exited before it was ready: ${why}`);
}
