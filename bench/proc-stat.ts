/** A child's CPU time and resident memory as Linux reports them in /proc/<pid>/stat and status. */
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';

let clockTicks: number | undefined;

/** Clock ticks per second of /proc/<pid>/stat's times (`getconf CLK_TCK`, 100 on Linux). */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim());
    } catch {
      clockTicks = NaN;
    }
    if (!Number.isInteger(clockTicks) || clockTicks <= 0) clockTicks = 100;
  }
  return clockTicks;
}

/** User plus system CPU time of every thread of `pid`, in clock ticks (fields 14 and 15 of stat). */
export function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // The command name (field 2) is in parentheses and may hold spaces: count fields after its ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

/** VmRSS of `pid` in MiB. */
export function rssMiB(pid: number): number {
  const kB = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  if (kB === undefined) throw new Error(`no VmRSS in /proc/${pid}/status (a zombie?)`);
  return Number(kB) / 1024;
}

/**
 * Voluntary context switches of every thread of `pid`: each is a thread going to sleep after it was
 * woken, so over an idle window it counts wake-ups (timers, I/O) far more finely than CPU ticks.
 */
export function voluntarySwitches(pid: number): number {
  let total = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const status = readFileSync(`/proc/${pid}/task/${task}/status`, 'utf8');
      total += Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    } catch {
      /* the thread ended between the listing and the read */
    }
  }
  return total;
}
