import { RpcException } from '@nestjs/microservices';
import { decideSettlement, errorMessage } from './settlement.policy';

const handler = 'Driver.run';

describe('decideSettlement', () => {
  it('publishes a returned result as is and acks', () => {
    expect(
      decideSettlement({
        kind: 'returned',
        handler,
        value: { success: true, message: 'ok', data: { n: 1 } },
      }),
    ).toEqual({
      result: { success: true, message: 'ok', data: { n: 1 } },
      action: 'ack',
      reason: 'reconciled',
    });
  });

  it('keeps a reported failure as a failure result and acks', () => {
    expect(decideSettlement({ kind: 'returned', handler, value: { success: false } })).toMatchObject({
      result: { success: false, message: '' },
      action: 'ack',
    });
  });

  it('turns a thrown error into a failure result with its original message', () => {
    expect(decideSettlement({ kind: 'threw', handler, error: new Error('disk full') })).toMatchObject({
      result: { success: false, message: 'disk full' },
      action: 'ack',
    });
  });

  it.each([
    [undefined, 'Driver.run returned nothing'],
    [{ ok: true }, 'Driver.run returned {"ok":true}'],
    [{ success: 'yes' }, 'Driver.run returned {"success":"yes"}'],
    [{ success: true, message: 5 }, 'Driver.run returned {"success":true,"message":5}'],
  ])('reports a non-DriverResult return value %j as a failure', (value, start) => {
    const settlement = decideSettlement({ kind: 'returned', handler, value });
    expect(settlement.action).toBe('ack');
    expect(settlement.result?.success).toBe(false);
    expect(settlement.result?.message).toMatch(
      new RegExp(`^${start.replace(/[{}()]/g, '\\$&')}; a @Reconcile handler must return`),
    );
  });
});

describe('decideSettlement with run state', () => {
  const threw = { kind: 'threw' as const, handler, error: new Error('AbortError') };

  it('reports a timed-out run as a failure, whatever the aborted handler returned or threw', () => {
    for (const outcome of [threw, { kind: 'returned' as const, handler, value: { success: true } }]) {
      expect(decideSettlement(outcome, { timedOutAfterMs: 250 })).toEqual({
        result: { success: false, message: 'timed out after 250 ms' },
        action: 'ack',
        reason: 'timed out after 250 ms',
      });
    }
  });

  it('naks a run aborted at the shutdown deadline without a result, even if it also timed out', () => {
    expect(decideSettlement(threw, { shutdownAborted: true, timedOutAfterMs: 10 })).toEqual({
      action: 'nak',
      reason: 'aborted at the shutdown deadline: another replica reruns it',
    });
  });
});

describe('errorMessage', () => {
  it.each([
    [new Error('boom'), 'boom'],
    [new TypeError(''), 'TypeError'],
    ['plain string', 'plain string'],
    [{ status: 'error', message: 'Forbidden resource' }, 'Forbidden resource'],
    [new RpcException('rpc says no'), 'rpc says no'],
    [42, '42'],
    [undefined, 'undefined'],
  ])('reads %p as %p', (error, message) => {
    expect(errorMessage(error)).toBe(message);
  });
});
