import { connect, NatsConnection } from 'nats';
import { ConveyorControlPlane } from '@conveyor-ci/testing';

/**
 * A test file's local control plane and a NATS client on its embedded server: started before the
 * file's tests, stopped after them (client first, so it does not see the server go away).
 */
export function useControlPlane(): { readonly plane: ConveyorControlPlane; readonly nc: NatsConnection } {
  let plane: ConveyorControlPlane | undefined;
  let nc: NatsConnection | undefined;
  beforeAll(async () => {
    plane = await ConveyorControlPlane.start();
    nc = await connect({ servers: plane.natsUrl });
  });
  afterAll(async () => {
    await nc?.close();
    await plane?.stop();
  });
  return {
    get plane() {
      return plane!;
    },
    get nc() {
      return nc!;
    },
  };
}
