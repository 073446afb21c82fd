/**
 * What a generated validator (`@Reconcile({ spec })`) adds per event, on the bench's pipeline
 * resource: a script, not part of `npm run bench` and never a timed test. The target (issue 30) is
 * under 5 µs per event. Run after `nest build -p bench/tsconfig.json`:
 * `node node_modules/.cache/conveyor-bench/bench/spec-validator.cost.js`.
 */
import { performance } from 'node:perf_hooks';
import { PipelineSpecValidator } from '../src/generated';
import { BENCH_SPEC } from './broker';

const EVENTS = 200_000;
const ROUNDS = 5;

/** Each event's spec parsed from its own JSON, as the transport decodes every payload afresh. */
function specs(spec: unknown): unknown[] {
  const text = JSON.stringify(spec);
  return Array.from({ length: EVENTS }, () => JSON.parse(text));
}

/** The best of ROUNDS passes over every spec, in ns per event. */
function nsPerEvent(list: unknown[], check: (spec: unknown) => unknown): number {
  let best = Infinity;
  for (let round = 0; round < ROUNDS; round++) {
    const started = performance.now();
    for (const spec of list) check(spec);
    best = Math.min(best, ((performance.now() - started) * 1e6) / list.length);
  }
  return best;
}

const valid = specs(BENCH_SPEC);
const invalid = specs({ ...BENCH_SPEC, steps: [{ name: 'build' }] });
const check = (spec: unknown) => PipelineSpecValidator.check(spec);
if (check(valid[0]) !== undefined || check(invalid[0]) === undefined) throw new Error('validator is wrong');
const validNs = nsPerEvent(valid, check);
const invalidNs = nsPerEvent(invalid, check);
console.log(`generated pipeline validator, best of ${ROUNDS} x ${EVENTS} events (node ${process.version}):`);
console.log(`  valid spec:   ${(validNs / 1000).toFixed(3)} µs/event`);
console.log(`  invalid spec: ${(invalidNs / 1000).toFixed(3)} µs/event (the violation object included)`);
console.log(`  target: < 5 µs/event: ${Math.max(validNs, invalidNs) < 5000 ? 'PASS' : 'FAIL'}`);
