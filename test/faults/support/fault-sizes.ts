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
