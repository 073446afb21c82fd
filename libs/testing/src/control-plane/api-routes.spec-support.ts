import { Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Resource } from '@conveyor-ci/nestjs/internal';
import { ApiDeps, fiberNotFound, handleApiRoute } from './api.routes';
import { ControlPlaneStore } from './control-plane.store';

/** What the fake publisher returns as run id (the NATS side is tested with the engine). */
export const RUN_ID = '0b8e2d5a-7c1f-4e3b-a9d2-5f6c7b8a9e10';
export const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

/** The §3.2 example definition (docs/docs/tutorial/defining-primitives.md). */
export const flutterBuilder = {
  name: 'flutter-builder',
  version: '0.0.1',
  schema: {
    type: 'object',
    properties: { repository: { type: 'string' }, env: { type: 'array' } },
    required: ['repository', 'env'],
  },
};
export const buildApp = {
  name: 'build-app',
  resource: 'flutter-builder',
  spec: { repository: 'https://github.com/org/repo', env: [] },
};
export const flutterPipeline = {
  name: 'flutter-pipeline',
  resource: 'flutter-builder',
  description: 'A pipeline to build a flutter codebase into an APK',
  steps: [
    { id: '1', name: 'Start Build Environment', driver: 'container-start' },
    { id: '2', name: 'Clone Git Repository', driver: 'git-cloner' },
  ],
};

export interface Answer {
  status: number;
  type: string | null;
  allow: string | null;
  text: string;
  /** The body parsed as JSON, when it is JSON. */
  json: any;
}

/** The state of one test: a fresh store, and what the routes published. */
export interface ApiRoutesState {
  store: ControlPlaneStore;
  published: Resource<unknown>[];
  core: { subject: string; data: string }[];
  publish: (resource: Resource<unknown>) => Promise<string>;
  /** What handleApiRoute returned for the last request. */
  handled: boolean | undefined;
}

/**
 * The API routes on a real HTTP server with an in-memory store, for the route specs: started once
 * per file, with a fresh store and recorders before each test. Not part of the package.
 */
export function useApiRoutes() {
  let server: Server;
  let base: string;
  const t = {} as ApiRoutesState;

  beforeAll(async () => {
    server = createServer((req, res) => {
      void (async () => {
        const chunks: Buffer[] = [];
        for await (const chunk of req) chunks.push(chunk as Buffer);
        const deps: ApiDeps = {
          store: t.store,
          publishResourceEvent: (resource) => t.publish(resource),
          publishCore: (subject, data) => {
            t.core.push({ subject, data });
          },
        };
        t.handled = await handleApiRoute(req, res, Buffer.concat(chunks), deps);
        if (!t.handled) fiberNotFound(req, res);
      })().catch((err: unknown) => {
        res.writeHead(599).end(String(err));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  beforeEach(() => {
    t.store = new ControlPlaneStore();
    t.published = [];
    t.core = [];
    t.handled = undefined;
    t.publish = async (resource) => {
      t.published.push(resource);
      return RUN_ID;
    };
  });

  async function call(
    method: string,
    path: string,
    options: { json?: unknown; body?: string | Uint8Array; contentType?: string } = {},
  ): Promise<Answer> {
    const headers: Record<string, string> = {};
    let body: string | Uint8Array | undefined = options.body;
    if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['Content-Type'] = 'application/json';
    }
    if (options.contentType !== undefined) headers['Content-Type'] = options.contentType;
    const res = await fetch(`${base}${path}`, { method, headers, body });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return {
      status: res.status,
      type: res.headers.get('content-type'),
      allow: res.headers.get('allow'),
      text,
      json,
    };
  }

  const post = (path: string, json: unknown) => call('POST', path, { json });
  const put = (path: string, json: unknown) => call('PUT', path, { json });

  function expectError(answer: Answer, status: number, error: string): void {
    expect({ status: answer.status, body: answer.text }).toEqual({ status, body: JSON.stringify({ error }) });
    expect(answer.type).toBe('application/json');
  }

  async function defineFlutterBuilder(): Promise<void> {
    expect((await post('/resource-definitions/', flutterBuilder)).status).toBe(201);
  }

  return { t, call, post, put, expectError, defineFlutterBuilder };
}
