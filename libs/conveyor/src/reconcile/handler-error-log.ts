import { Logger } from '@nestjs/common';
import { BaseRpcExceptionFilter } from '@nestjs/microservices';

/** Errors a Conveyor run recorded: the run's settlement line reports them, once. */
const reported = new WeakSet<object>();

/** Marks `error` as reported by its run, so Nest's RPC exception layer does not log it again. */
export function markReported(error: unknown): void {
  if (typeof error === 'object' && error !== null) reported.add(error);
}

/** True when a Conveyor run recorded `error` (its settlement line is the one log line about it). */
export function isReported(error: unknown): boolean {
  return typeof error === 'object' && error !== null && reported.has(error);
}

/**
 * Nest's BaseRpcExceptionFilter logs every non-RpcException at ERROR with its stack, before our
 * settlement line logs the same failure at WARN: a handler failure read as two incidents, an expected
 * RetryableError as a crash. Its logger is a static field, so the only way to keep the original error
 * flowing to user filters (we must not wrap it) and still log it once is to replace that logger with
 * one that skips the errors a run has recorded. Every other error is logged exactly as before.
 */
class RunAwareRpcExceptionLogger extends Logger {
  constructor(private readonly inner: Logger) {
    super('RpcExceptionsHandler');
  }
  override error(message: unknown, ...rest: unknown[]): void {
    if (isReported(message)) return;
    (this.inner.error as (...args: unknown[]) => void)(message, ...rest);
  }
}

/** Installs the run-aware logger on Nest's RPC exception filter (idempotent). */
export function logRunErrorsOnce(): void {
  const filter = BaseRpcExceptionFilter as unknown as { logger: Logger };
  if (filter.logger instanceof RunAwareRpcExceptionLogger) return;
  filter.logger = new RunAwareRpcExceptionLogger(filter.logger);
}
