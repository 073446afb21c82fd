import { ConveyorApiError } from '@conveyor-ci/nestjs';

/** The ConveyorApiError `promise` rejects with; fails the test when it resolves or rejects with anything else. */
export function rejectionOf(promise: Promise<unknown>): Promise<ConveyorApiError> {
  return promise.then(
    () => {
      throw new Error('expected the call to fail with a ConveyorApiError');
    },
    (err: unknown) => {
      expect(err).toBeInstanceOf(ConveyorApiError);
      return err as ConveyorApiError;
    },
  );
}
