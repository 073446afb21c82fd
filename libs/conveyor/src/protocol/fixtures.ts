/**
 * Golden bytes copied from the wire contract's examples (§3.4, §3.6, §3.7). Tests that check bytes
 * compare against these; change them only together with the contract.
 */

/** Contract §3.4: a DriverMessage exactly as the server publishes it (payload is a JSON string). */
export const DRIVER_MESSAGE_BYTES =
  '{"event":"create","payload":"{\\"id\\":\\"6f1c2a4e-3b7d-4c1e-9a55-0c2f5e7d8a91\\",\\"name\\":\\"build-app\\",\\"pipeline\\":\\"flutter-pipeline\\",\\"resource\\":\\"flutter-builder\\",\\"metadata\\":{\\"version\\":\\"1\\"},\\"spec\\":{\\"repository\\":\\"https://github.com/org/repo\\",\\"env\\":[]}}","id":"9f2b6c1d0e3a4b5c6d7e8f90","run_id":"0b8e2d5a-7c1f-4e3b-a9d2-5f6c7b8a9e10"}';

/** The same message with Go's HTML escaping inside the payload (`<`, `>`, `&` as \u003c …) and a `process` event. */
export const DRIVER_MESSAGE_GO_ESCAPED_BYTES =
  '{"event":"process","payload":"{\\"id\\":\\"6f1c2a4e-3b7d-4c1e-9a55-0c2f5e7d8a91\\",\\"name\\":\\"build-app\\",\\"pipeline\\":\\"flutter-pipeline\\",\\"resource\\":\\"flutter-builder\\",\\"metadata\\":{\\"driverresults.container-start\\":\\"{\\\\\\"success\\\\\\":true,\\\\\\"message\\\\\\":\\\\\\"ok\\\\\\",\\\\\\"data\\\\\\":{\\\\\\"containerID\\\\\\":\\\\\\"abc123\\\\\\"},\\\\\\"driver\\\\\\":\\\\\\"container-start\\\\\\"}\\",\\"version\\":\\"1\\"},\\"spec\\":{\\"script\\":\\"make \\\\u003e out.log \\\\u0026\\\\u0026 test -s out.log \\\\u003c /dev/null\\"}}","id":"0a1b2c3d4e5f60718293a4b5","run_id":"0b8e2d5a-7c1f-4e3b-a9d2-5f6c7b8a9e10"}';

/** Contract §3.6: the result event a driver publishes to `pipelines.driver.result` (key order as Go emits it). */
export const PIPELINE_RESULT_EVENT = {
  event: 'driver.result',
  run_id: '0b8e2d5a-7c1f-4e3b-a9d2-5f6c7b8a9e10',
  resource: {
    id: '6f1c2a4e-3b7d-4c1e-9a55-0c2f5e7d8a91',
    name: 'build-app',
    pipeline: 'flutter-pipeline',
    resource: 'flutter-builder',
    metadata: { version: '1' },
    spec: {},
  },
  driverresult: {
    success: true,
    message: 'Sample Driver Reconciled Successfully',
    data: { containerID: 'abc123' },
    driver: 'container-start',
  },
} as const;

/** Contract §3.6: the init event the API publishes, with Go's zero-valued driverresult (`"data":null`). */
export const PIPELINE_INIT_EVENT_BYTES =
  '{"event":"create","run_id":"0b8e2d5a-7c1f-4e3b-a9d2-5f6c7b8a9e10","resource":{"id":"6f1c2a4e-3b7d-4c1e-9a55-0c2f5e7d8a91","name":"build-app","pipeline":"flutter-pipeline","resource":"flutter-builder","metadata":{"version":"1"},"spec":{}},"driverresult":{"success":false,"message":"","data":null,"driver":""}}';

/** Contract §3.7: a Go DriverLogger line (Unix-seconds timestamp, empty pipeline). */
export const GO_LOG_LINE_BYTES =
  '{"runid":"0b8e2d5a-7c1f-4e3b-a9d2-5f6c7b8a9e10","driver":"container-start","pipeline":"","timestamp":"1746179360","message":"Sample Driver Working... 1/20"}';
