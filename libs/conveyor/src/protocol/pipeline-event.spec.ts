import { encodeResult, essentialResource } from '../settlement/result.publisher';
import { encodeGoJson, encodePipelineEvent, encodeWire, toPipelineEvent } from './codec';
import type { Resource } from './wire.types';

const resource: Resource = {
  id: 'id-1',
  name: 'w<1>',
  pipeline: 'p&1',
  resource: 'widget',
  metadata: { note: '\u2028 "quoted" é' },
  spec: { steps: [1, 2.5, null], nested: { ok: true } },
};
const result = { success: false, message: 'a <b> & c', data: { n: 1 } };
const text = (bytes: Uint8Array) => new TextDecoder().decode(bytes);

describe('encodePipelineEvent', () => {
  it('gives the bytes encodeWire(toPipelineEvent()) gives, for the resource as an object or as its text', () => {
    const expected = text(encodeWire(toPipelineEvent('run-1', resource, result, 'd')));
    expect(text(encodePipelineEvent('run-1', resource, result, 'd'))).toBe(expected);
    expect(text(encodePipelineEvent('run-1', encodeGoJson(resource), result, 'd'))).toBe(expected);
    expect(text(encodePipelineEvent('run-1', encodeGoJson(resource), { success: true }, 'd'))).toBe(
      text(encodeWire(toPipelineEvent('run-1', resource, { success: true }, 'd'))),
    );
  });

  it('puts the resource text in as it came, not parsed and encoded again', () => {
    const received = '{ "name": "w1",  "resource": "widget", "big": 12345678901234567890 }';
    const event = text(encodePipelineEvent('run-1', received, { success: true }, 'd'));
    expect(event).toContain(`"resource":${received},"driverresult":`);
    expect(JSON.parse(event)).toEqual({
      event: 'driver.result',
      run_id: 'run-1',
      resource: JSON.parse(received),
      driverresult: { success: true, message: '', data: null, driver: 'd' },
    });
  });

  it('throws, as encodeWire does, for data JSON cannot carry', () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expect(() => encodePipelineEvent('run-1', '{}', { success: true, data: cyclic }, 'd')).toThrow();
  });
});

describe('encodeResult with the resource as received text', () => {
  it('cuts a resource too big to what the engine reads, read from that text', () => {
    const big = encodeGoJson({ ...resource, spec: { blob: 'x'.repeat(10_000) } });
    const encoded = encodeResult({ runId: 'run-1', resource: big, msgId: 'm' }, { success: true }, 'd', 8192);
    expect(encoded.kind).toBe('replaced');
    const event = JSON.parse(text((encoded as { bytes: Uint8Array }).bytes));
    expect(event.resource).toEqual(essentialResource(resource));
    expect(event.resource).toEqual({
      id: 'id-1',
      name: 'w<1>',
      pipeline: 'p&1',
      resource: 'widget',
      metadata: {},
      spec: null,
    });
  });
});
