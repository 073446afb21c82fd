import type { LoggerService } from '@nestjs/common';

/** A Nest logger that keeps every line (all levels) so a test can read what the driver said. */
export class CapturedLogs implements LoggerService {
  readonly lines: string[] = [];

  log(message: unknown, ...rest: unknown[]): void {
    this.keep('log', message, rest);
  }
  warn(message: unknown, ...rest: unknown[]): void {
    this.keep('warn', message, rest);
  }
  error(message: unknown, ...rest: unknown[]): void {
    this.keep('error', message, rest);
  }
  debug(message: unknown, ...rest: unknown[]): void {
    this.keep('debug', message, rest);
  }
  verbose(message: unknown, ...rest: unknown[]): void {
    this.keep('verbose', message, rest);
  }

  /** Lines matching `pattern`. */
  matching(pattern: RegExp): string[] {
    return this.lines.filter((line) => pattern.test(line));
  }

  private keep(level: string, message: unknown, rest: unknown[]): void {
    const text = typeof message === 'string' ? message : JSON.stringify(message);
    this.lines.push(`${level} ${text}${rest.length ? ` ${JSON.stringify(rest)}` : ''}`);
  }
}
