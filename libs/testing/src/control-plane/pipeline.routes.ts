import { randomBytes } from 'node:crypto';
import { DriverMessage, encodeGoJson } from '@conveyor-ci/nestjs/internal';
import { Ctx, error, errorText, json } from './fiber-http';
import {
  GoPipeline,
  decodeBody,
  decodeDriverMessage,
  decodePipeline,
  goPipeline,
  storedPipeline,
} from './go-json.codec';

// Pipeline and broadcast handlers (internal/handlers/pipeline.go, message.go at @HEAD).

export function createPipeline({ req, res, body, deps }: Ctx): void {
  const pipeline = decodeBody<GoPipeline>({ req, res, body }, decodePipeline);
  if (!pipeline) return;
  // Server bug kept (§10.1): an unknown resource type is 500, the 404 branch is dead.
  if (!deps.store.definitions.has(pipeline.resource)) {
    return error(
      res,
      500,
      `Failed to find resource definition: resource definition with name ${pipeline.resource} not found`,
    );
  }
  // An upsert: `CreatePipeline` is an etcd Put (§10.1). Steps are not checked; without them the response has `"steps":null`.
  deps.store.pipelines.set(pipeline.name, storedPipeline(pipeline));
  json(res, 201, goPipeline(pipeline));
}

export function broadcastMessage({ req, res, body, deps }: Ctx): void {
  const parsed = decodeBody<DriverMessage>(
    { req, res, body },
    decodeDriverMessage,
    'could not parse request body',
  );
  if (!parsed) return;
  // A new 24-hex id (§4), stored at `driver-messages/{id}`, then the message re-marshalled on core `application`.
  const message: DriverMessage = { ...parsed, id: randomBytes(12).toString('hex') };
  deps.store.driverMessages.set(message.id, message);
  try {
    deps.publishCore('application', encodeGoJson(message));
  } catch (err) {
    // The server answers `{"error": err.Error()}` here.
    return error(res, 500, errorText(err));
  }
  json(res, 200, { message: 'message published' });
}
