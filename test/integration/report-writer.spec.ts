import { ConveyorControlPlane, ConveyorTestingModule, makeResource } from '@conveyor-ci/testing';
import { REPORT_SOURCE_DRIVER, ReportWriterDriver } from '../../apps/report-writer/report-writer.driver';

/** The report-writer example driver's handler against the local control plane's API. */
let plane: ConveyorControlPlane;
let testing: ConveyorTestingModule;

beforeAll(async () => {
  plane = await ConveyorControlPlane.start();
  testing = await ConveyorTestingModule.create({
    controllers: [ReportWriterDriver],
    providers: [{ provide: REPORT_SOURCE_DRIVER, useValue: 'shell-runner' }],
    options: { driverName: 'report-writer', apiUrl: plane.apiUrl },
  });
});
afterAll(async () => {
  await testing.close();
  await plane.stop();
});

const shellResult = {
  success: true,
  message: '1 step(s) passed',
  data: { steps: [] },
  driver: 'shell-runner',
};
const stepped = (name: string) =>
  makeResource({
    name,
    resource: 'pipeline',
    pipeline: 'p',
    spec: {},
    metadata: { version: '1', 'driverresults.shell-runner': JSON.stringify(shellResult) },
  });

it("creates the report resource (and its definition) from the shell runner's result", async () => {
  const run = await testing.reconcile(stepped('build-1'), { event: 'process', runId: 'run-1' });
  expect(run.result?.driverresult).toMatchObject({ success: true, message: 'report build-1-report created' });
  expect(plane.store.definitions.has('report')).toBe(true);
  expect(plane.store.getResource('report', 'build-1-report')).toMatchObject({
    spec: { runId: 'run-1', success: true, summary: 'shell-runner: succeeded: 1 step(s) passed' },
    metadata: { version: '1' },
  });
});

it('a redelivered run replaces its report instead of failing on "already exists"', async () => {
  const run = await testing.reconcile(stepped('build-1'), {
    event: 'process',
    runId: 'run-1',
    deliveryCount: 2,
  });
  expect(run.result?.driverresult).toMatchObject({ success: true, data: { action: 'replaced' } });
  expect(plane.store.getResource('report', 'build-1-report')).toMatchObject({ metadata: { version: '2' } });
});

it('fails the step when the resource carries no result of the source driver', async () => {
  const run = await testing.reconcile(makeResource({ name: 'bare', resource: 'pipeline', spec: {} }));
  expect(run.result?.driverresult).toMatchObject({
    success: false,
    message: 'bare carries no result of "shell-runner": run report-writer as a later step than it',
  });
  expect(plane.store.getResource('report', 'bare-report')).toBeUndefined();
});
