import { AckPolicy } from 'nats';
import { MESSAGES_STREAM } from '@conveyor-ci/nestjs/internal';
import { eventually } from '@conveyor-ci/testing';
import {
  DRIVER_MESSAGE_GO_ESCAPED_BYTES,
  PIPELINE_INIT_EVENT_BYTES,
} from '../../libs/conveyor/src/protocol/fixtures';
import { encodeGoJson } from '../../libs/conveyor/src/protocol';
import { useControlPlane } from '../support/control-plane-suite';

const suite = useControlPlane();

const RUN_ID = '0b8e2d5a-7c1f-4e3b-a9d2-5f6c7b8a9e10';
const RESOURCE_ID = '6f1c2a4e-3b7d-4c1e-9a55-0c2f5e7d8a91';

describe('local control plane: bytes on the wire (contract golden)', () => {
  it('publishes the pipeline init event and the next step’s DriverMessage exactly as the server', async () => {
    const { store } = suite.plane;
    store.definitions.set('flutter-builder', { name: 'flutter-builder', schema: { type: 'object' } });
    store.pipelines.set('flutter-pipeline', {
      name: 'flutter-pipeline',
      resource: 'flutter-builder',
      steps: [
        { name: 'start', driver: 'container-start' },
        { name: 'build', driver: 'builder' },
      ],
    });
    const resource = {
      id: RESOURCE_ID,
      name: 'build-app',
      pipeline: 'flutter-pipeline',
      resource: 'flutter-builder',
      metadata: { version: '1' },
      spec: { script: 'make > out.log && test -s out.log < /dev/null' },
    };
    store.putResource(resource);
    // A consumer for the second driver, as a driver would have (interest retention).
    const jsm = await suite.nc.jetstreamManager();
    await jsm.consumers.add(MESSAGES_STREAM, {
      durable_name: 'builder',
      filter_subject: 'drivers.builder.resources.flutter-builder',
      ack_policy: AckPolicy.Explicit,
    });
    const init: string[] = [];
    suite.nc.subscribe('pipelines.pipeline.init', {
      callback: (_e, m) => init.push(new TextDecoder().decode(m.data)),
    });
    await suite.nc.flush(); // the subscription is registered before anything is published

    const runId = await suite.plane.publishResourceEvent({ ...resource, spec: {} });
    await eventually(() => init.length === 1, 'the init event');
    expect(init[0].replace(runId, RUN_ID)).toBe(PIPELINE_INIT_EVENT_BYTES);

    // container-start reports success: the engine stores it and sends the updated resource on.
    await suite.nc.jetstream().publish(
      'pipelines.driver.result',
      encodeGoJson({
        event: 'driver.result',
        run_id: RUN_ID,
        resource,
        driverresult: {
          success: true,
          message: 'ok',
          data: { containerID: 'abc123' },
          driver: 'container-start',
        },
      }),
    );
    const consumer = await suite.nc.jetstream().consumers.get(MESSAGES_STREAM, 'builder');
    const next = await consumer.next({ expires: 10_000 });
    expect(next?.subject).toBe('drivers.builder.resources.flutter-builder');
    const bytes = new TextDecoder().decode(next!.data);
    const id = JSON.parse(bytes).id as string;
    expect(id).toMatch(/^[0-9a-f]{24}$/);
    expect(bytes.replace(id, '0a1b2c3d4e5f60718293a4b5')).toBe(DRIVER_MESSAGE_GO_ESCAPED_BYTES);
    expect(store.getResource('flutter-builder', 'build-app')?.metadata).toEqual({
      'driverresults.container-start':
        '{"success":true,"message":"ok","data":{"containerID":"abc123"},"driver":"container-start"}',
      version: '1',
    });
    next!.ack();
  });
});
