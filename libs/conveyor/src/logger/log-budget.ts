/**
 * Bytes a logger may hold, shared down a chain: a sink's own budget and, above it, the logger's
 * total. A line is buffered only if every level has room, so no amount of step output grows the
 * heap past the budget; what does not fit is dropped and counted by the caller.
 */
export class LogBudget {
  private used = 0;

  constructor(
    readonly limitBytes: number,
    private readonly parent?: LogBudget,
  ) {}

  get usedBytes(): number {
    return this.used;
  }

  /** Takes `bytes` if this budget and every one above it have room. */
  tryReserve(bytes: number): boolean {
    if (this.used + bytes > this.limitBytes) return false;
    if (this.parent && !this.parent.tryReserve(bytes)) return false;
    this.used += bytes;
    return true;
  }

  /** Takes `bytes` even past the limit (a drop marker must get through). */
  force(bytes: number): void {
    this.used += bytes;
    this.parent?.force(bytes);
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
    this.parent?.release(bytes);
  }
}
