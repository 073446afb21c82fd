/**
 * The lines every logger scenario logs: the same texts in the same order, so the scenarios differ in
 * how a line is shipped, never in what it is. Free of Nest and nats.js (both drivers load it).
 */

/**
 * Line `i` (1-based) of `total`: a compiler step's output, about 80 bytes. Every line is distinct,
 * as real output mostly is; equal lines would only test Loki's de-duplication.
 */
export function logLine(i: number, total: number): string {
  const unit = `module_${i % 97}`;
  return `step build: line ${i} of ${total}: cc -O2 -c src/${unit}.c -o build/${unit}.o`;
}
