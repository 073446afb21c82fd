/**
 * Dead letters in the local setups: each driver publishes its own on `events.deadletter.{driver}`
 * (under `events.>`, which the server's `messages` stream captures, like the option's documented
 * example), and the console watches them all.
 */
export const DEAD_LETTER_SUBJECTS = 'events.deadletter.>';

/** The `deadLetterSubject` (env `CONVEYOR_DEAD_LETTER_SUBJECT`) of driver `driver` in the local setups. */
export function deadLetterSubject(driver: string): string {
  return `events.deadletter.${driver}`;
}
