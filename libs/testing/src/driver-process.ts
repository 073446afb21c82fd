import { ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { killOnExit, registerSpawned } from './process-registry';

/** True while `pid` exists and is not a zombie (an orphan reaped late holds nothing). */
export function isProcessAlive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Waits until `pid` is gone; returns whether it is. */
export async function waitForExit(pid: number, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isProcessAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  return !isProcessAlive(pid);
}

/** One line the driver wrote: parsed when it is JSON (pino), raw otherwise. */
export interface DriverLine {
  stream: 'stdout' | 'stderr';
  raw: string;
  json?: Record<string, unknown>;
}

/**
 * A built driver started as a child process with `node` (not npm, which does not forward signals),
 * so tests can send it real signals and read what it logs.
 */
export class DriverProcess {
  readonly lines: DriverLine[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private lineWaiters: (() => void)[] = [];

  constructor(
    entry: string,
    env: Record<string, string>,
    options: { onLine?: (line: DriverLine) => void; cwd?: string } = {},
  ) {
    this.child = spawn(process.execPath, [entry], {
      cwd: options.cwd,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    registerSpawned({ pid: this.child.pid });
    const forget = killOnExit(this.child);
    for (const stream of ['stdout', 'stderr'] as const) {
      createInterface({ input: this.child[stream]!, crlfDelay: Infinity }).on('line', (raw) => {
        let json: Record<string, unknown> | undefined;
        try {
          json = raw.startsWith('{') ? JSON.parse(raw) : undefined;
        } catch {
          json = undefined;
        }
        const line = { stream, raw, json };
        this.lines.push(line);
        options.onLine?.(line);
        this.lineWaiters.splice(0).forEach((w) => w());
      });
    }
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        forget();
        resolve({ code, signal });
      }),
    );
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Resolves with the first line matching `predicate`; rejects after `timeoutMs` or when the process exits. */
  async waitForLine(predicate: (line: DriverLine) => boolean, timeoutMs = 15_000): Promise<DriverLine> {
    const deadline = Date.now() + timeoutMs;
    let exited = false;
    void this.exited.then(() => (exited = true));
    for (;;) {
      const found = this.lines.find(predicate);
      if (found) return found;
      if (exited) throw new Error(`driver exited before the expected line; last lines:\n${this.tail()}`);
      const left = deadline - Date.now();
      if (left <= 0)
        throw new Error(`expected line not seen in ${timeoutMs} ms; last lines:\n${this.tail()}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250));
        this.lineWaiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Sends `signal` and waits for the exit (SIGKILL after `timeoutMs`). */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 30_000) {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    const result = await this.exited;
    clearTimeout(timer);
    return result;
  }

  /** The last lines, for failure messages. */
  tail(n = 20): string {
    return this.lines
      .slice(-n)
      .map((l) => l.raw)
      .join('\n');
  }
}
