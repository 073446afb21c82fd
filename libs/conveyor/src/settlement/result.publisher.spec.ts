import { ErrorCode, NatsError } from 'nats';
import type { Resource } from '../protocol';
import { ResultRefusedError, classifyPublishError, encodeResult } from './result.publisher';

const resource: Resource = {
  id: 'id-1',
  name: 'build',
  pipeline: 'p',
  resource: 'pipeline',
  metadata: { version: '1' },
  spec: { steps: [] },
};
const target = { runId: 'r1', resource, msgId: 'r1:d:m1' };
const text = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes));

describe('classifyPublishError', () => {
  const natsError = (code: string) => new NatsError('x', code);
  const apiError = (code: number, errCode: number) =>
    Object.assign(natsError(String(code)), { api_error: { code, err_code: errCode, description: 'x' } });

  it.each([
    ['a timeout (the PubAck did not come)', natsError(ErrorCode.Timeout), 'transient'],
    ['no responders (JetStream restarting or electing)', natsError(ErrorCode.NoResponders), 'transient'],
    ['a disconnect', natsError(ErrorCode.Disconnect), 'transient'],
    ['the connection closed', natsError(ErrorCode.ConnectionClosed), 'transient'],
    ['JetStream temporarily unavailable', apiError(503, 10008), 'transient'],
    ['an unknown error', new Error('boom'), 'transient'],
    [
      'max payload exceeded (the client refuses to send)',
      natsError(ErrorCode.MaxPayloadExceeded),
      'max-payload',
    ],
    ["above the stream's max_msg_size", apiError(400, 10054), 'max-payload'],
    ['a permissions violation', natsError(ErrorCode.PermissionsViolation), 'permission'],
    ['an authorization violation', natsError(ErrorCode.AuthorizationViolation), 'permission'],
    ['a wrong expected last sequence', apiError(400, 10071), 'rejected'],
    [
      'no stream for the subject (known by asking)',
      new ResultRefusedError('no stream', 'no-stream'),
      'no-stream',
    ],
  ])('%s -> %s', (_name, err, expected) => {
    expect(classifyPublishError(err)).toBe(expected);
  });
});

describe('encodeResult', () => {
  it('encodes a plain result as the engine reads it', () => {
    const encoded = encodeResult(target, { success: true, message: 'ok', data: { a: 1 } }, 'd', 1 << 20);
    expect(encoded.kind).toBe('bytes');
    expect(text((encoded as { bytes: Uint8Array }).bytes).driverresult).toEqual({
      success: true,
      message: 'ok',
      data: { a: 1 },
      driver: 'd',
    });
  });

  it.each([
    [
      'a cycle',
      (() => {
        const a: Record<string, unknown> = {};
        a.self = a;
        return a;
      })(),
      /circular/i,
    ],
    ['a BigInt', { n: BigInt(1) }, /BigInt/],
    [
      'a throwing toJSON',
      {
        toJSON: () => {
          throw new Error('no json for you');
        },
      },
      /no json for you/,
    ],
  ])('replaces data with %s by a failure result saying why', (_name, data, why) => {
    const encoded = encodeResult(target, { success: true, message: 'ok', data }, 'd', 1 << 20);
    expect(encoded.kind).toBe('replaced');
    const event = text((encoded as { bytes: Uint8Array }).bytes);
    expect(event.driverresult.success).toBe(false);
    expect(event.driverresult.message).toMatch(/^result data is not JSON-encodable: /);
    expect(event.driverresult.message).toMatch(why);
    expect(event.driverresult.data).toBeNull();
  });

  it('replaces a result above max_payload by a failure result that fits, naming both sizes', () => {
    const encoded = encodeResult(target, { success: true, data: '<'.repeat(6000) }, 'd', 8192);
    expect(encoded.kind).toBe('replaced');
    const bytes = (encoded as { bytes: Uint8Array }).bytes;
    expect(bytes.length).toBeLessThan(8192);
    const message = text(bytes).driverresult.message;
    // Go-style escaping turns each "<" into six bytes: 6000 become 36,000.
    expect(message).toMatch(
      /^result is 3\d{4} bytes, above the server's max_payload of 8192 bytes: data dropped$/,
    );
    expect(text(bytes).resource).toEqual(resource);
  });

  it('cuts the resource to what the engine reads when the resource itself is too big', () => {
    const big = { ...resource, spec: { blob: '<'.repeat(10_000) } };
    const encoded = encodeResult({ ...target, resource: big }, { success: true }, 'd', 8192);
    expect(encoded.kind).toBe('replaced');
    const event = text((encoded as { bytes: Uint8Array }).bytes);
    expect(event.resource).toEqual({
      id: 'id-1',
      name: 'build',
      pipeline: 'p',
      resource: 'pipeline',
      metadata: {},
      spec: null,
    });
    expect(event.driverresult.message).toMatch(/resource spec and metadata dropped too/);
  });

  it('refuses when not even a failure result fits', () => {
    expect(encodeResult(target, { success: true }, 'd', 100).kind).toBe('refused');
  });
});
