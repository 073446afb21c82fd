import * as api from './index';

/**
 * The values `@conveyor-ci/nestjs` exports (types aside), so that a name joins the public surface
 * only on purpose: a driver author should be able to hold this list in their head. Internals the
 * testing package needs go through `internal.ts`, which is not part of the API.
 */
it('exports only what a driver author uses', () => {
  expect(Object.keys(api).sort()).toEqual([
    'ConsumerBindingError',
    'ConveyorApiError',
    'ConveyorApiOutcomeUnknownError',
    'ConveyorAuthorizationError',
    'ConveyorClient',
    'ConveyorClientModule',
    'ConveyorConfigError',
    'ConveyorConsoleModule',
    'ConveyorModule',
    'DEAD_LETTER_HEADERS',
    'DRIVER_REGISTRY_BUCKET',
    'DriverLogger',
    'DriverRegistry',
    'DuplicateReconcileHandlerError',
    'InvalidApiNameError',
    'InvalidSubjectTokenError',
    'LogStream',
    'NatsUnavailableError',
    'PopTokenSigner',
    'Reconcile',
    'ReconcileContext',
    'RetryableError',
    'RunCancelledError',
    'RunControl',
    'connectConveyor',
    'deleteDriverConsumer',
    'isConveyorContext',
    'previousResult',
    'progressReports',
    'publishCancel',
    'resourceVersion',
  ]);
});
