/**
 * The lines every logger scenario logs, and the audit of what was stored: the same texts in the same
 * order everywhere, so the scenarios differ in how a line is shipped, never in what it is. Free of
 * Nest and nats.js (both drivers load it).
 */

/**
 * Line `i` (1-based) of `total`: a compiler step's output, about 80 bytes. Every line is distinct,
 * as real output mostly is; equal lines would only test Loki's de-duplication.
 */
export function logLine(i: number, total: number): string {
  const unit = `module_${i % 97}`;
  return `step build: line ${i} of ${total}: cc -O2 -c src/${unit}.c -o build/${unit}.o`;
}

const LINE_NUMBER = /^step build: line (\d+) of (\d+): /;

/** What a store holds of a run's lines: counted by content, not by message count. */
export interface LineAudit {
  /** Stored lines, all of them. */
  stored: number;
  /** Distinct logged lines among them: the count every "stored" figure of the section uses. */
  distinct: number;
  /** Logged lines stored more than once (a retry that was not de-duplicated). */
  duplicates: number;
  /** Stored lines that are none of the logged ones, e.g. the framework's own drop notice. */
  others: number;
  /** The first of those, as a reader of the log would see it. */
  otherSample?: string;
}

/**
 * Counts `messages` against the `total` logged lines. A line counts only when it is byte for byte
 * what was logged: a truncated, masked or re-encoded line is an "other".
 */
export class LineAuditor {
  private readonly seen: Uint8Array;
  private readonly audit: LineAudit = { stored: 0, distinct: 0, duplicates: 0, others: 0 };

  constructor(private readonly total: number) {
    this.seen = new Uint8Array(total + 1);
  }

  add(message: string): void {
    this.audit.stored += 1;
    const match = LINE_NUMBER.exec(message);
    const i = match && Number(match[2]) === this.total ? Number(match[1]) : 0;
    if (i < 1 || i > this.total || message !== logLine(i, this.total)) {
      this.audit.others += 1;
      this.audit.otherSample ??= message;
    } else if (this.seen[i]) {
      this.audit.duplicates += 1;
    } else {
      this.seen[i] = 1;
      this.audit.distinct += 1;
    }
  }

  result(): LineAudit {
    return { ...this.audit };
  }
}
