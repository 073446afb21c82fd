/**
 * Event counts of the stream cases. The 10,000 is the default; `CONVEYOR_FAULT_EVENTS`
 * scales every stream case (e.g. down on a slower machine, up for a soak).
 */
export function streamEvents(defaultCount = 10_000): number {
  const raw = process.env.CONVEYOR_FAULT_EVENTS;
  const value = raw === undefined ? defaultCount : Number(raw);
  if (!Number.isInteger(value) || value < 12)
    throw new Error(`CONVEYOR_FAULT_EVENTS=${raw}: a whole number >= 12`);
  return value;
}

/**
 * The most a resume may take in an assertion. The target is 2 s (the issue's), and that is what the
 * full run (`npm run test:faults`, `CONVEYOR_FAULTS=all`) asserts and the table reports. The CI
 * subset shares the machine with everything else CI runs, where timing is noisy (2.8 s seen once):
 * it asserts 5 s, which still catches the 5 to 11 s stall this suite was built to catch.
 */
export const RESUME_LIMIT_MS = process.env.CONVEYOR_FAULTS === 'all' ? 2000 : 5000;
