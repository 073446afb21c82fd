/**
 * Transport id of the Conveyor strategy. `@Reconcile` binds its pattern to this id, and Nest's
 * ListenersController registers a pattern only on servers with the same id, so another microservice
 * transport in the same app never subscribes to Conveyor handlers.
 */
export const CONVEYOR_TRANSPORT = Symbol.for('conveyor-ci:transport');

/** Reflect metadata key of {@link ReconcileHandlerMeta} on a handler method. */
export const RECONCILE_METADATA = 'conveyor-ci:reconcile';
/** Key of the handler metadata inside the Nest pattern `extras`. */
export const RECONCILE_EXTRAS = 'conveyorReconcile';
