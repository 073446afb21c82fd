import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { type BrowserContext, type Page, chromium } from 'playwright-core';
import { CONSOLE_PAGE_BYTES } from '@conveyor-ci/nestjs/internal';
import {
  ConveyorControlPlane,
  DriverProcess,
  PIPELINE_DEFINITION,
  freePort,
  waitForConsumer,
} from '@conveyor-ci/testing';
import { missingDrivers } from '../../apps/conveyor-dev/driver-check';
import { REFERENCE_DRIVER_ENTRY } from '../support/reference-driver';

/**
 * The run console (issue 29) in a real headless browser (Debian's chromium through playwright-core):
 * the local control plane serves it, the built reference driver and report-writer run as child
 * processes, and the test does what a user would: sees both drivers live, submits the sample
 * pipeline and watches its progress bar and log lines, cancels a long step, replays a dead letter.
 * Then an axe-core check, and the screenshots in docs/.
 */
// Functions handed to page.evaluate run in the page; the tests' tsconfig has no DOM lib.
declare const document: any;
declare const window: any;
type PaintTimings = { getEntriesByType(type: string): { name: string; startTime: number }[] };

const CHROMIUM = process.env.CONVEYOR_CHROMIUM ?? '/usr/bin/chromium';
const REPORT_WRITER_ENTRY = resolve(__dirname, '../../dist/apps/report-writer/main.js');
const DOCS = resolve(__dirname, '../../docs');
const SHELL = 'shell-runner';
const WRITER = 'report-writer';
const UI_WAIT_MS = 20_000;

let plane: ConveyorControlPlane;
let drivers: DriverProcess[] = [];
let context: BrowserContext;
let page: Page;
let profile: string;

async function startDriver(
  entry: string,
  name: string,
  env: Record<string, string> = {},
): Promise<DriverProcess> {
  return new DriverProcess(entry, {
    CONVEYOR_NATS_URL: plane.natsUrl,
    CONVEYOR_API_URL: plane.apiUrl,
    CONVEYOR_DRIVER_NAME: name,
    CONVEYOR_DEAD_LETTER_SUBJECT: `events.deadletter.${name}`,
    PORT: String(await freePort()),
    HOST: '127.0.0.1',
    ...env,
  });
}

async function api(method: string, path: string, body: unknown): Promise<any> {
  const response = await fetch(`${plane.apiUrl}${path}`, {
    method,
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path} -> ${response.status}: ${text}`);
  return text ? JSON.parse(text) : undefined;
}

/** Submits a `pipeline` resource running `steps` through the sample pipeline; returns the run id. */
async function submit(name: string, steps: { name: string; run: string }[]): Promise<string> {
  const created = await api('POST', '/resources/', {
    name: `${name}-${Date.now()}`,
    resource: 'pipeline',
    pipeline: 'hello-pipeline',
    spec: { steps },
  });
  return created.runid;
}

const step = (runId: string, driver: string) => `article[data-run="${runId}"] tr[data-step="${driver}"]`;

beforeAll(async () => {
  plane = await ConveyorControlPlane.start({ console: { deadLetterSubject: 'events.deadletter.>' } });
  drivers = [
    await startDriver(REFERENCE_DRIVER_ENTRY, SHELL, { CONVEYOR_CONCURRENCY: '2' }),
    await startDriver(REPORT_WRITER_ENTRY, WRITER, { REPORT_SOURCE_DRIVER: SHELL }),
  ];
  await waitForConsumer(plane.jsm, SHELL, { timeoutMs: 30_000 });
  await waitForConsumer(plane.jsm, WRITER, { timeoutMs: 30_000 });
  await api('POST', '/resource-definitions/apply', PIPELINE_DEFINITION);
  await api('POST', '/pipelines/', {
    name: 'hello-pipeline',
    resource: 'pipeline',
    steps: [
      { name: 'run', driver: SHELL },
      { name: 'report', driver: WRITER },
    ],
  });
  profile = mkdtempSync(join(tmpdir(), 'conveyor-console-chromium-'));
  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
  page = context.pages()[0] ?? (await context.newPage());
  // No request may leave for anywhere but the console's own origin: no CDN, no network at run time.
  const origin = new URL(plane.apiUrl).origin;
  await page.route('**/*', (route) =>
    new URL(route.request().url()).origin === origin ? route.continue() : route.abort(),
  );
}, 90_000);

afterAll(async () => {
  await context?.close().catch(() => undefined);
  if (profile) rmSync(profile, { recursive: true, force: true });
  await Promise.all(drivers.map((d) => d.stop('SIGTERM', 10_000)));
  await plane?.stop();
});

describe('run console in a browser', () => {
  it('opens fast and small, and shows both sample drivers live with their consumers', async () => {
    const response = await page.goto(plane.consoleUrl!, { waitUntil: 'load' });
    expect(response?.status()).toBe(200);
    const bytes = (await response!.body()).length;
    expect(bytes).toBeLessThan(32 * 1024);
    // Paint comes after `load` on a busy machine: wait for it a little, but a figure is not a
    // verdict (timings belong to the bench), so a page that paints late still passes.
    const paints = async () =>
      page
        .waitForFunction(
          () => (performance as unknown as PaintTimings).getEntriesByType('paint').length > 0,
          undefined,
          { timeout: 5000 },
        )
        .catch(() => undefined)
        .then(() =>
          page.evaluate(() =>
            Object.fromEntries(
              (performance as unknown as PaintTimings)
                .getEntriesByType('paint')
                .map((e) => [e.name, Math.round(e.startTime)]),
            ),
          ),
        );
    const paint = await paints();
    // Again with the browser warm: the first navigation of a fresh profile also pays its start-up.
    await page.reload({ waitUntil: 'load' });
    const warm = await paints();
    // The figures for docs/BENCHMARKS.md.
    console.log(
      `console page: ${bytes} bytes (template ${CONSOLE_PAGE_BYTES} bytes); first contentful paint ` +
        `${paint['first-contentful-paint']} ms cold (fresh profile), ${warm['first-contentful-paint']} ms warm ` +
        `(first paint ${paint['first-paint']} / ${warm['first-paint']} ms)`,
    );
    for (const name of [SHELL, WRITER]) {
      const row = page.locator(`#drivers tr[data-driver="${name}"][data-live="yes"]`);
      await row.first().waitFor({ timeout: UI_WAIT_MS });
      // The consumer's counts are read from JetStream: numbers, not "unknown".
      await expect(row.first().locator('td').nth(5).textContent()).resolves.toMatch(/^\d+$/);
    }
  });

  it('shows a submitted pipeline run live: states, progress bar, log lines, then the stored log', async () => {
    const runId = await submit('sample', [
      { name: 'greet', run: 'echo "hello from the console test"' },
      { name: 'count', run: 'for i in 1 2 3; do echo "tick $i"; sleep 0.3; done' },
      { name: 'rest', run: 'sleep 1; echo rested' },
    ]);
    const shell = page.locator(step(runId, SHELL));
    // The report step shows from the start: the console knows the pipeline's steps.
    await page.locator(step(runId, WRITER)).waitFor({ timeout: UI_WAIT_MS });
    // Part way: the progress bar moved but is not full, and lines arrived live.
    await page.waitForFunction(
      (selector) => {
        const bar = document.querySelector(`${selector} progress`);
        return bar !== null && !bar.hidden && bar.value > 0 && bar.value < 1;
      },
      step(runId, SHELL),
      { timeout: UI_WAIT_MS },
    );
    await expect(shell.getAttribute('data-state')).resolves.toBe('running');
    const log = page.locator(`article[data-run="${runId}"] pre`);
    await expect(log.textContent()).resolves.toContain('hello from the console test');
    await page.waitForSelector(`${step(runId, SHELL)}[data-state="succeeded"]`, { timeout: UI_WAIT_MS });
    await page.waitForSelector(`${step(runId, WRITER)}[data-state="succeeded"]`, { timeout: UI_WAIT_MS });
    await page.waitForFunction(
      (id) =>
        /from the store/.test(document.querySelector(`article[data-run="${id}"] summary`)?.textContent ?? ''),
      runId,
      { timeout: UI_WAIT_MS },
    );
    await expect(log.textContent()).resolves.toContain('tick 3');
    await page.screenshot({ path: join(DOCS, 'console.png'), fullPage: true });
  });

  it('cancels a long step from its button, with the reason typed in, and shows it cancelled', async () => {
    const runId = await submit('long', [{ name: 'wait', run: 'echo waiting; sleep 60' }]);
    await page.waitForSelector(`${step(runId, SHELL)}[data-state="running"]`, { timeout: UI_WAIT_MS });
    await page.getByLabel('Cancel reason').fill('stopped in the browser test');
    // By keyboard, as a user without a mouse would.
    await page.getByRole('button', { name: `Cancel run ${runId} (step ${SHELL})` }).focus();
    await page.keyboard.press('Enter');
    await page.waitForSelector(`${step(runId, SHELL)}[data-state="cancelled"]`, { timeout: UI_WAIT_MS });
    await expect(
      page
        .locator(`${step(runId, SHELL)} td`)
        .nth(3)
        .textContent(),
    ).resolves.toBe('cancelled: stopped in the browser test');
    await expect(page.getByRole('status').textContent()).resolves.toContain(`Cancel sent for run ${runId}`);
  });

  it('lists a dead letter with its reason and event, and replays it to its driver as a new run that succeeds', async () => {
    // A producer's bug: an event without a run id. The driver cannot run it and dead-letters it;
    // a replay gives it a run id.
    const resource = {
      name: `orphan-${Date.now()}`,
      resource: 'pipeline',
      metadata: { version: '1' },
      spec: { steps: [{ name: 'again', run: 'echo "replayed fine"' }] },
    };
    await plane.nc
      .jetstream()
      .publish(
        `drivers.${SHELL}.resources.pipeline`,
        JSON.stringify({ event: 'create', payload: JSON.stringify(resource), id: 'a'.repeat(24) }),
      );
    const row = page.locator('#dead-letters tr[data-dead-letter]').filter({ hasText: 'run_id' });
    await row.waitFor({ timeout: UI_WAIT_MS });
    await expect(row.locator('td').nth(1).textContent()).resolves.toBe(SHELL);
    await expect(row.locator('pre').textContent()).resolves.toContain(resource.name);
    await row.getByRole('button', { name: /^Replay dead letter/ }).click();
    const replayed = row.locator('a[href^="#run-"]');
    await replayed.waitFor({ timeout: UI_WAIT_MS });
    const runId = (await replayed.getAttribute('href'))!.slice('#run-'.length);
    await page.waitForSelector(`${step(runId, SHELL)}[data-state="succeeded"]`, { timeout: UI_WAIT_MS });
    await expect(page.locator(`article[data-run="${runId}"] .replay`).textContent()).resolves.toContain(
      'Replay of dead letter',
    );
    await expect(page.locator(`article[data-run="${runId}"] pre`).textContent()).resolves.toContain(
      'replayed fine',
    );
    await page.locator(`article[data-run="${runId}"]`).scrollIntoViewIfNeeded();
    await page.screenshot({ path: join(DOCS, 'console-dead-letter.png'), fullPage: true });
  });

  it('warns, on the page and in `npm run dev`, about a step whose driver has no live replica', async () => {
    await api('POST', '/pipelines/', {
      name: 'ghost-pipeline',
      resource: 'pipeline',
      steps: [{ name: 'haunt', driver: 'ghost-driver' }],
    });
    const resource = {
      name: `ghost-${Date.now()}`,
      resource: 'pipeline',
      pipeline: 'ghost-pipeline',
      spec: { steps: [{ name: 'boo', run: 'true' }] },
    };
    const created = await api('POST', '/resources/', resource);
    expect(await missingDrivers(plane, resource)).toEqual([
      'pipeline "ghost-pipeline" names driver "ghost-driver", which has no live replica: its step will wait',
    ]);
    expect(await missingDrivers(plane, { ...resource, pipeline: 'hello-pipeline' })).toEqual([]);
    await page
      .locator('#warnings li')
      .filter({ hasText: `run ${created.runid} waits for driver "ghost-driver"` })
      .waitFor({ timeout: UI_WAIT_MS });
    await expect(
      page.locator(`${step(created.runid, 'ghost-driver')}`).getAttribute('data-state'),
    ).resolves.toBe('waiting');
  });

  it('has no serious or critical accessibility violations (axe-core)', async () => {
    await page.addScriptTag({ path: require.resolve('axe-core/axe.min.js') });
    const violations = await page.evaluate(async () => {
      const axe = (window as unknown as { axe: { run(): Promise<{ violations: any[] }> } }).axe;
      const result = await axe.run();
      return result.violations.map((v) => ({
        id: v.id,
        impact: v.impact,
        nodes: v.nodes.length,
        help: v.help,
      }));
    });
    if (violations.length > 0) console.log('axe-core findings:', JSON.stringify(violations, null, 2));
    expect(violations.filter((v) => v.impact === 'serious' || v.impact === 'critical')).toEqual([]);
  });
});
