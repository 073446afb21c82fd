import { PIPELINE_DEFINITION } from '@conveyor-ci/testing';

/** The reference driver's name (`npm start` runs it under this name unless CONVEYOR_DRIVER_NAME says otherwise). */
export const REFERENCE_DRIVER = 'shell-runner';
/** The pipeline the banner's curls create. */
export const SAMPLE_PIPELINE = 'hello-pipeline';

/** What the banner needs to know about the running control plane. */
export interface BannerTarget {
  apiUrl: string;
  natsUrl: string;
  /** Secured (`--auth`): the driver's env, and the env var the curls read their token from. */
  auth?: { driverEnv: Record<string, string>; tokenVariable: string };
}

/** `value` as one POSIX shell word, single-quoted. */
export function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * A paste-ready curl: JSON body, and the bearer token from `$<tokenVariable>` when the API is
 * secured. A `"$(date +%s)"` in the body is left for the shell, so the same line pasted twice makes
 * two resources (the server refuses a duplicate name).
 */
export function curl(target: BannerTarget, method: 'GET' | 'POST', path: string, body?: unknown): string {
  const auth = target.auth ? ` -H "Authorization: Bearer $${target.auth.tokenVariable}"` : '';
  const url = shellQuote(`${target.apiUrl}${path}`);
  if (body === undefined) return `curl -sS${auth} ${url}`;
  const json = shellQuote(JSON.stringify(body)).replace(/\$\(date \+%s\)/g, `'"$(date +%s)"'`);
  return `curl -sS -X ${method} ${url}${auth} -H 'Content-Type: application/json' -d ${json}`;
}

/** `GET /logs?runid=<runId>`: every stored line of the run, in the server's order. */
export function logsUrl(apiUrl: string, runId: string): string {
  return `${apiUrl}/logs?runid=${encodeURIComponent(runId)}`;
}

/** The env a process needs to reach NATS (and, secured, to present the client certificate). */
function natsEnv(target: BannerTarget): string {
  const tls = Object.entries(target.auth?.driverEnv ?? {}).filter(([key]) => key.startsWith('CONVEYOR_TLS_'));
  return [`CONVEYOR_NATS_URL=${target.natsUrl}`, ...tls.map(([k, v]) => `${k}=${v}`)].join(' ');
}

/** `npm run cancel -- <runId> [reason]` with the env that reaches this NATS. */
export function cancelCommand(target: BannerTarget, runId: string): string {
  return `${natsEnv(target)} npm run cancel -- ${runId} stop`;
}

/** The sample `pipeline` resource the banner submits: one step, its output readable in the logs. */
export function sampleResource(name: string): unknown {
  return {
    name,
    resource: PIPELINE_DEFINITION.name,
    pipeline: SAMPLE_PIPELINE,
    spec: { steps: [{ name: 'greet', run: 'echo "hello from Conveyor"; uname -sr' }] },
  };
}

/**
 * The `npm run conveyor:dev` banner: where things are, and the curls that take a newcomer from
 * nothing to a driver event and its logs (issue 26), in order.
 */
export function conveyorDevBanner(target: BannerTarget, seeded: boolean): string[] {
  const driverEnv = [
    `CONVEYOR_NATS_URL=${target.natsUrl}`,
    `CONVEYOR_API_URL=${target.apiUrl}`,
    `CONVEYOR_DRIVER_NAME=${REFERENCE_DRIVER}`,
    ...Object.entries(target.auth?.driverEnv ?? {}).map(([k, v]) => `${k}=${v}`),
  ].join(' ');
  return [
    `Conveyor API  ${target.apiUrl}`,
    `NATS          ${target.natsUrl}`,
    seeded
      ? `Seeded the resource definition "${PIPELINE_DEFINITION.name}" (the reference driver's: shell steps); --no-seed starts empty.`
      : `Not seeded (--no-seed): define a resource type (step 2) before submitting one of it.`,
    '',
    '1. Start a driver, in another shell (here the reference driver; any driver takes the same env):',
    `   ${driverEnv} npm start`,
    `2. Define a resource type${seeded ? ` (done for "${PIPELINE_DEFINITION.name}"; this is how)` : ''}:`,
    `   ${curl(target, 'POST', '/resource-definitions/apply', PIPELINE_DEFINITION)}`,
    '3. Define a pipeline naming the driver:',
    `   ${curl(target, 'POST', '/pipelines', {
      name: SAMPLE_PIPELINE,
      resource: PIPELINE_DEFINITION.name,
      steps: [{ name: 'run', driver: REFERENCE_DRIVER }],
    })}`,
    '4. Submit a resource that runs it (the answer\'s "runid" names the run; its logs URL is printed here):',
    `   ${curl(target, 'POST', '/resources', sampleResource('hello-$(date +%s)'))}`,
    "5. Read the run's logs, or cancel it:",
    `   ${curl(target, 'GET', '/logs?runid=<runid>')}`,
    `   ${cancelCommand(target, '<runid>')}`,
    'Ctrl-C stops.',
  ];
}

/** What conveyor:dev prints when a run starts: its logs URL and how to cancel it, paste-ready. */
export function runStartedLines(target: BannerTarget, runId: string, what: string): string[] {
  return [
    `[api] run ${runId} started (${what})`,
    `      logs:   ${curl(target, 'GET', `/logs?runid=${encodeURIComponent(runId)}`)}`,
    `      cancel: ${cancelCommand(target, runId)}`,
  ];
}
