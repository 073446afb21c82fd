/**
 * Where a driver's start-up CPU time goes, read from the .cpuprofile that `node --cpu-prof` writes:
 * sampled time by package, and how much of it is spent under `require()`.
 */
import { readFileSync } from 'node:fs';
import { packageOf } from './child-protocol';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  /** Monotonic clock, µs (the clock of process.hrtime). */
  startTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface StartupProfile {
  /** Sampled time from the profile's start to `untilUs`. */
  totalMs: number;
  /** Of which with the CommonJS loader on the stack: resolving, reading, compiling, running modules. */
  requireMs: number;
  /** Descending. A module's compile time counts for the package whose code called require(). */
  byPackage: { name: string; ms: number }[];
}

const LOADER = 'node:internal/modules/cjs/loader';
const SPECIAL: Record<string, string> = {
  '(idle)': '(idle: waiting on I/O and timers)',
  '(garbage collector)': '(garbage collector)',
  '(program)': '(program: V8 and Node native code)',
};

/** Reads `file` and sums its samples up to `untilUs` on the monotonic clock. */
export function startupProfile(file: string, untilUs: number): StartupProfile {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parents = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parents.set(child, node.id);

  const owners = new Map<number, { name: string; underRequire: boolean }>();
  const ownerOf = (id: number): { name: string; underRequire: boolean } => {
    const known = owners.get(id);
    if (known) return known;
    const { functionName, url } = nodes.get(id)!.callFrame;
    const parent = parents.get(id);
    const above = parent === undefined ? { name: '(root)', underRequire: false } : ownerOf(parent);
    const isFile = url.startsWith('/') || url.startsWith('file://');
    const owner = {
      // The innermost frame with a file of its own decides: loader and native frames below it do not.
      name:
        // Own keys only: a frame named `constructor` or `toString` must not find Object's.
        (Object.hasOwn(SPECIAL, functionName) ? SPECIAL[functionName] : undefined) ??
        (isFile ? packageOf(url) : above.name === '(root)' ? '(node internals)' : above.name),
      underRequire: above.underRequire || url === LOADER,
    };
    owners.set(id, owner);
    return owner;
  };

  const byPackage = new Map<string, number>();
  let totalUs = 0;
  let requireUs = 0;
  let at = profile.startTime;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i];
    if (at > untilUs) break;
    // A sample stands for the time until the next one.
    const us = profile.timeDeltas[i + 1] ?? 0;
    const owner = ownerOf(profile.samples[i]);
    byPackage.set(owner.name, (byPackage.get(owner.name) ?? 0) + us);
    totalUs += us;
    if (owner.underRequire) requireUs += us;
  }
  return {
    totalMs: totalUs / 1000,
    requireMs: requireUs / 1000,
    byPackage: [...byPackage].map(([name, us]) => ({ name, ms: us / 1000 })).sort((a, b) => b.ms - a.ms),
  };
}
