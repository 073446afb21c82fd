import { buildReport } from './report';

describe('buildReport', () => {
  const resource = { name: 'hello', resource: 'pipeline', pipeline: 'p', spec: {} };

  it("summarises the shell runner's result and keeps its steps", () => {
    const result = {
      success: true,
      message: '2 step(s) passed',
      driver: 'shell-runner',
      data: { steps: [{ name: 'greet', exitCode: 0, signal: null, durationMs: 25, timedOut: false }] },
    };
    expect(buildReport(resource, result, 'run-1')).toEqual({
      name: 'hello-report',
      resource: 'report',
      spec: {
        source: { resource: 'pipeline', name: 'hello', pipeline: 'p', driver: 'shell-runner' },
        runId: 'run-1',
        success: true,
        summary: 'shell-runner: succeeded: 2 step(s) passed',
        steps: [{ name: 'greet', exitCode: 0, durationMs: 25 }],
      },
    });
  });

  it("reports another driver's result without steps", () => {
    const report = buildReport(
      { ...resource, pipeline: undefined },
      { success: false, message: 'boom', driver: 'x', data: 'text' },
      'r',
    );
    expect(report.spec).toMatchObject({ success: false, summary: 'x: failed: boom', steps: [] });
    expect(report.spec.source.pipeline).toBe('');
  });
});
