/**
 * Figures to markdown, and docs/BENCHMARKS.md as a file of independently generated sections: each
 * bench owns the text between its markers, so sections written by other benches (or by hand) survive.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, release, totalmem, type as osType } from 'node:os';
import { dirname } from 'node:path';

export interface Machine {
  cpu: string;
  cores: number;
  ramGiB: number;
  os: string;
  node: string;
  natsJs: string;
  natsServer: string;
}

export function describeMachine(natsServer: string): Machine {
  let os = `${osType()} ${release()}`;
  try {
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(readFileSync('/etc/os-release', 'utf8'))?.[1];
    if (pretty) os = `${pretty}, kernel ${release()}`;
  } catch {
    /* not Linux: the kernel name and release will do */
  }
  const natsPackage = JSON.parse(readFileSync(require.resolve('nats/package.json'), 'utf8')) as {
    version: string;
  };
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: cpus().length,
    ramGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    os,
    node: process.version,
    natsJs: natsPackage.version,
    natsServer,
  };
}

/** The lines every section starts with: where, with what, how, when, how many rounds. */
export function runConditions(machine: Machine, command: string, date: string, rounds: number): string[] {
  return [
    `- Machine: ${machine.cpu}, ${machine.cores} cores, ${machine.ramGiB} GiB RAM, ${machine.os}`,
    `- Node ${machine.node}, nats.js ${machine.natsJs}, nats-server ${machine.natsServer}`,
    `- Command: \`${command}\``,
    `- Date: ${date}`,
    `- ${rounds} round${rounds === 1 ? '' : 's'} per scenario, interleaved; the median round is the figure`,
  ];
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Nearest-rank percentile (`p` in 0..100) of a non-empty list. */
export function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

const integer = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
export const fmtInt = (n: number): string => integer.format(n);
export const fmtRatio = (n: number): string => (Number.isFinite(n) ? n.toFixed(2) : 'n/a');

/** A markdown table; the first row is the header. */
export function table(rows: string[][]): string {
  const line = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const [head, ...body] = rows;
  return [line(head), line(head.map(() => '---')), ...body.map(line)].join('\n');
}

const TITLE = [
  '# Benchmarks',
  '',
  'Measured on one machine by `npm run bench` (not part of `npm test`). Each section between',
  '`<!-- bench:NAME:start -->` and `<!-- bench:NAME:end -->` is rewritten by the bench that owns it;',
  'edit outside the markers.',
  '',
].join('\n');

/**
 * Replaces section `name` of `file` with `body`, keeping everything outside its markers; appends the
 * section when the markers are missing and creates the file (with its title) when it is.
 */
export function writeSection(file: string, name: string, body: string): void {
  const start = `<!-- bench:${name}:start -->`;
  const end = `<!-- bench:${name}:end -->`;
  const section = `${start}\n${body.trim()}\n${end}`;
  const current = existsSync(file) ? readFileSync(file, 'utf8') : TITLE;
  const from = current.indexOf(start);
  const to = current.indexOf(end, from);
  const next =
    from >= 0 && to > from
      ? current.slice(0, from) + section + current.slice(to + end.length)
      : `${current.trimEnd()}\n\n${section}\n`;
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, next);
}
