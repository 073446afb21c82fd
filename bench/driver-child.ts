/**
 * A driver under test, in a fresh Node process per round: one scenario's JIT warm-up, heap and GC
 * debt never leak into the next one's figure. Every child is tracked so none outlives the bench.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import type {
  ChildToParent,
  DriverChildConfig,
  LoggedReport,
  ParentToChild,
  StartupReport,
} from './child-protocol';

/** How long any section waits for a driver to start consuming (a loaded machine is slow to start one). */
export const START_TIMEOUT_MS = 60_000;

const live = new Set<ChildProcess>();
let exitHook = false;

/** Kills every driver child still running (synchronous: also usable from an `exit` handler). */
export function killAllChildren(): void {
  for (const child of live) child.kill('SIGKILL');
  live.clear();
}

/**
 * The child environment without CONVEYOR_* / LOKI_* variables: the framework reads them as option
 * fallbacks, and a stray one from the caller's shell would change what is measured (or send logs
 * to some Loki that is not on this machine).
 */
export function childEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !/^(CONVEYOR_|LOKI_)/.test(key)),
  ) as NodeJS.ProcessEnv;
}

export type DriverKind = 'loop' | 'framework' | 'log-loop' | 'log-framework';

/** How to fork a driver that is not one of the bench's own (no config argument, no IPC protocol). */
export interface ScriptSpawn {
  script: string;
  /** Added to the cleaned environment (see childEnv). */
  env: NodeJS.ProcessEnv;
  /** How it is asked to stop: it does not read the bench's `stop` message. */
  stopSignal: NodeJS.Signals;
  /** Keep its output (for a failure's message) without echoing it: a driver that logs every run. */
  quiet?: boolean;
}

/** Per-spawn options of a bench driver. */
export interface SpawnOptions {
  /** Write a .cpuprofile named after the label into this directory (default: BENCH_CPU_PROF). */
  cpuProfileDir?: string;
  /** Fork this file instead of the kind's own script (the kind's bundled build). */
  script?: string;
}

const SCRIPTS: Record<DriverKind, string> = {
  loop: 'loop-driver.js',
  framework: 'framework-driver.js',
  'log-loop': 'log-loop-driver.js',
  'log-framework': 'log-framework-driver.js',
};

export class DriverChild {
  /** Set when the child reported a failure or exited on its own; the round fails with it. */
  private failed?: Error;
  private output = '';
  private partial = '';
  private readonly exited: Promise<void>;
  private stopRequested = false;
  readonly consuming: Promise<number>;
  /** A logging driver's report once its lines are logged (rejects if the child fails first). */
  readonly logged: Promise<LoggedReport>;
  /** The framework's counters, sent by a logging driver after its shutdown flush. */
  private statsReport?: unknown;
  private startupReport?: StartupReport;

  /** `startTimeoutMs` undefined: the child never reports `consuming`; do not wait for it. */
  private constructor(
    private readonly child: ChildProcess,
    private readonly label: string,
    startTimeoutMs: number | undefined,
    private readonly stopSignal?: NodeJS.Signals,
    private readonly quiet = false,
  ) {
    live.add(child);
    // A send to a child that is dying (killed by a signal handler) fails with EPIPE; unhandled,
    // that 'error' event would crash the bench in the middle of its cleanup.
    child.on('error', (err) => (this.failed ??= new Error(`${label}: ${err.message}`)));
    if (!exitHook) {
      exitHook = true;
      process.once('exit', killAllChildren);
    }
    for (const stream of [child.stdout, child.stderr]) {
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => this.forward(chunk));
    }
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        live.delete(child);
        if (!this.stopRequested || code !== 0) {
          this.failed ??= new Error(
            `${label}: driver process exited (code ${code}, signal ${signal})${this.tail()}`,
          );
        }
        resolve();
      }),
    );
    this.consuming = new Promise<number>((resolve, reject) => {
      const timer =
        startTimeoutMs === undefined
          ? undefined
          : setTimeout(() => {
              reject(
                new Error(
                  `${label}: driver did not start consuming within ${startTimeoutMs} ms${this.tail()}`,
                ),
              );
            }, startTimeoutMs);
      child.on('message', (message: ChildToParent) => {
        if (message.type === 'consuming') {
          clearTimeout(timer);
          resolve(message.at);
        } else if (message.type === 'failed') {
          this.failed ??= new Error(`${label}: driver failed: ${message.error}`);
          clearTimeout(timer);
          reject(this.failed);
        }
      });
      void this.exited.then(() => {
        clearTimeout(timer);
        reject(this.failed);
      });
    });
    this.logged = new Promise<LoggedReport>((resolve, reject) => {
      child.on('message', (message: ChildToParent) => {
        if (message.type === 'logged') resolve(message);
        else if (message.type === 'stats') this.statsReport = message.stats;
        else if (message.type === 'startup') this.startupReport = message;
        else if (message.type === 'failed') reject(this.failed);
      });
      void this.exited.then(() => reject(this.failed));
    });
    // Rejections are read through failure() as well; do not let an unobserved one crash the bench.
    this.consuming.catch(() => undefined);
    this.logged.catch(() => undefined);
  }

  static spawn(
    kind: DriverKind,
    config: DriverChildConfig,
    label: string,
    startTimeoutMs: number,
    options: SpawnOptions = {},
  ): DriverChild {
    const script = options.script ?? join(__dirname, SCRIPTS[kind]);
    // BENCH_CPU_PROF=<dir>: each driver process writes a .cpuprofile there (where the time goes).
    const profileDir = options.cpuProfileDir ?? process.env.BENCH_CPU_PROF;
    const child = fork(script, [JSON.stringify(config)], {
      env: childEnv(),
      execArgv: profileDir
        ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`, `--cpu-prof-name=${label}.cpuprofile`]
        : [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    return new DriverChild(child, label, startTimeoutMs);
  }

  /** Forks a driver configured by its environment (the reference driver), tracked like the others. */
  static spawnScript({ script, env, stopSignal, quiet }: ScriptSpawn, label: string): DriverChild {
    const child = fork(script, [], {
      env: { ...childEnv(), ...env },
      execArgv: [],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    return new DriverChild(child, label, undefined, stopSignal, quiet);
  }

  /** The driver's process id (for /proc); undefined if the fork failed. */
  get pid(): number | undefined {
    return this.child.pid;
  }

  /** What the child sent as `stats` (undefined until it has stopped cleanly). */
  get stats(): unknown {
    return this.statsReport;
  }

  /** What a framework driver sent as `startup` (before `consuming`). */
  get startup(): StartupReport | undefined {
    return this.startupReport;
  }

  failure(): Error | undefined {
    return this.failed;
  }

  /** Asks the child to close (the framework drains its connection), killing it after `timeoutMs`. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopRequested = true;
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const message: ParentToChild = { type: 'stop' };
    // With a callback, a failed send is reported there instead of as an 'error' event; the
    // kill timer below covers a child that never got the message.
    if (this.stopSignal) this.child.kill(this.stopSignal);
    else if (this.child.connected) this.child.send(message, () => undefined);
    let timer: NodeJS.Timeout | undefined;
    const killed = new Promise<boolean>((resolve) => {
      timer = setTimeout(() => {
        this.child.kill('SIGKILL');
        resolve(true);
      }, timeoutMs);
    });
    const forced = await Promise.race([this.exited.then(() => false), killed]);
    clearTimeout(timer);
    await this.exited;
    if (forced) throw new Error(`${this.label}: driver did not exit within ${timeoutMs} ms of stop; killed`);
  }

  /** Driver output goes to the bench's stderr, labelled: a warning from the framework is worth seeing. */
  private forward(chunk: string): void {
    this.output = (this.output + chunk).slice(-4000);
    if (this.quiet) return;
    // Chunks split lines anywhere: label whole lines only.
    const lines = (this.partial + chunk).split('\n');
    this.partial = lines.pop() ?? '';
    if (lines.length) process.stderr.write(lines.map((line) => `  [${this.label}] ${line}\n`).join(''));
  }

  private tail(): string {
    return this.output ? `; last output:\n${this.output}` : '';
  }
}
