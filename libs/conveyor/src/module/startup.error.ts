import { inspect } from 'node:util';

/**
 * A mistake in how the app is set up (options, handlers), found at startup. Its message says what
 * to change; its stack would show only Nest's injector and our own frames, printed by Nest's
 * exception handler as ten lines that bury that message. So the stack is the message alone.
 */
export class ConveyorStartupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
    Object.defineProperty(this, 'stack', {
      value: `${this.name}: ${message}`,
      enumerable: false,
      writable: true,
      configurable: true,
    });
  }

  /** How Node's inspector (and so Nest's logger) prints it: the message alone, without brackets. */
  [inspect.custom](): string {
    return this.stack ?? this.message;
  }
}
