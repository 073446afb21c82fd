import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { load, loadAll } from 'js-yaml';

/**
 * Docker is not available here, so compose.yml, loki.yml and the Dockerfile are checked for wiring
 * instead: every address the driver is given must be a service and a port that the stack serves.
 */
const ROOT = join(__dirname, '../..');
const read = (file: string) => readFileSync(join(ROOT, file), 'utf8');

interface Service {
  image?: string;
  build?: unknown;
  command?: string | string[];
  environment?: Record<string, string> | string[];
  ports?: (string | { target: number })[];
  volumes?: string[];
  depends_on?: string[] | Record<string, unknown>;
}

const compose = load(read('compose.yml')) as { services: Record<string, Service> };
const lokiConfig = load(read('loki.yml')) as any;
const packageJson = JSON.parse(read('package.json')) as { scripts: Record<string, string> };

function service(name: string): Service {
  const found = compose.services[name];
  if (!found) throw new Error(`compose.yml has no service ${name}`);
  return found;
}

function env(name: string): Record<string, string> {
  const environment = service(name).environment ?? {};
  if (!Array.isArray(environment)) return environment;
  return Object.fromEntries(
    environment.map((pair) => [pair.split('=')[0], pair.slice(pair.indexOf('=') + 1)]),
  );
}

/** `[host:]container` pairs of a service's published ports, short or long syntax. */
function publishedPorts(name: string): { host?: number; container: number }[] {
  return (service(name).ports ?? []).map((port) => {
    if (typeof port !== 'string') return { container: port.target };
    const parts = port.split('/')[0].split(':');
    return { container: Number(parts.at(-1)), ...(parts.length > 1 ? { host: Number(parts.at(-2)) } : {}) };
  });
}

/** The host path mounted at `target` in a service, relative to the repository root. */
function mountedFrom(name: string, target: string): string | undefined {
  const volume = (service(name).volumes ?? []).find((v) => v.split(':')[1] === target);
  return volume && posix.normalize(volume.split(':')[0]);
}

/** The service and port that a URL from the driver's environment must reach. */
function endpoint(url: string): { service: string; port: number } {
  const parsed = new URL(url);
  return { service: parsed.hostname, port: Number(parsed.port) };
}

describe('deployment files', () => {
  const driverEnv = env('driver');

  it('points the driver at the Conveyor API and NATS ports the conveyor service publishes', () => {
    expect(endpoint(driverEnv.CONVEYOR_API_URL)).toEqual({ service: 'conveyor', port: 8080 });
    expect(endpoint(driverEnv.CONVEYOR_NATS_URL)).toEqual({ service: 'conveyor', port: 4222 });
    expect(new URL(driverEnv.CONVEYOR_NATS_URL).protocol).toBe('nats:');
    expect(publishedPorts('conveyor').map((p) => p.container)).toEqual(expect.arrayContaining([8080, 4222]));
    expect(service('conveyor').image).toMatch(/^openug\/conveyor:/);
  });

  it('points the driver at the port Loki listens on, which the loki service publishes', () => {
    const loki = endpoint(driverEnv.LOKI_URL);

    expect(loki).toEqual({ service: 'loki', port: 3100 });
    expect(lokiConfig.server.http_listen_port).toBe(loki.port);
    expect(publishedPorts('loki').map((p) => p.container)).toContain(loki.port);
  });

  it('runs a Loki 3.x with the loki.yml of this repository', () => {
    const { image, command } = service('loki');
    const configPath = String(command).match(/-config\.file=(\S+)/)?.[1];

    expect(image).toMatch(/^grafana\/loki:3\.\d+\.\d+$/);
    expect(configPath).toBe('/etc/loki/loki.yml');
    expect(mountedFrom('loki', configPath as string)).toBe('loki.yml');
  });

  it('configures Loki for structured metadata: tsdb store, schema v13, allowed by the limits', () => {
    expect(lokiConfig.auth_enabled).toBe(false);
    expect(lokiConfig.schema_config.configs).toEqual([
      expect.objectContaining({ store: 'tsdb', schema: 'v13', object_store: 'filesystem' }),
    ]);
    expect(lokiConfig.schema_config.configs[0].index).toEqual({ prefix: 'index_', period: '24h' });
    expect(lokiConfig.common.storage.filesystem).toBeDefined();
    expect(lokiConfig.common.ring.kvstore.store).toBe('inmemory');
    expect(lokiConfig.limits_config.allow_structured_metadata).toBe(true);
  });

  it('gives the driver its name and an HTTP port that it publishes, and starts it after its dependencies', () => {
    const driver = service('driver');

    expect(driverEnv.CONVEYOR_DRIVER_NAME).toBe('shell-runner');
    expect(publishedPorts('driver').map((p) => p.container)).toContain(Number(driverEnv.PORT));
    expect(driver.build).toBe('.');
    const dependsOn = Array.isArray(driver.depends_on)
      ? driver.depends_on
      : Object.keys(driver.depends_on ?? {});
    expect(dependsOn).toEqual(expect.arrayContaining(['conveyor', 'loki']));
  });

  it('publishes every service on its own host port', () => {
    const hostPorts = Object.keys(compose.services).flatMap((name) =>
      publishedPorts(name).map((p) => p.host),
    );

    expect(new Set(hostPorts).size).toBe(hostPorts.length);
    expect(publishedPorts('grafana')).toEqual([{ host: 3001, container: 3000 }]);
  });

  it('provisions Grafana with a Loki datasource at the loki service', () => {
    const provisioned = mountedFrom('grafana', '/etc/grafana/provisioning/datasources/loki.yml');
    expect(provisioned).toBeDefined();
    const { datasources } = load(read(provisioned as string)) as {
      datasources: { type: string; url: string }[];
    };
    const loki = datasources.find((d) => d.type === 'loki');

    expect(endpoint(loki?.url ?? 'http://missing')).toEqual({
      service: 'loki',
      port: lokiConfig.server.http_listen_port,
    });
  });

  it('builds the driver image on node 20, bundled (npm run bundle), and starts the bundle', () => {
    const dockerfile = read('Dockerfile');
    const cmd = dockerfile.match(/^CMD\s+(\[.*\])\s*$/m)?.[1];

    const images = [...dockerfile.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
    expect(images[0]).toMatch(/^node:20[\w.-]*$/);
    // The code cache primed in the build stage is valid only on the same Node.js build.
    expect(new Set(images)).toEqual(new Set([images[0]]));
    expect(dockerfile).toMatch(/^RUN npm ci$/m);
    expect(dockerfile).toMatch(/^RUN npm run build && CONVEYOR_DRIVER_NAME=shell-runner npm run bundle$/m);
    expect(packageJson.scripts.bundle).toBe(
      'node dist/libs/conveyor/src/cli/main.js bundle dist/src/main.js --out dist/bundle',
    );
    expect(dockerfile).toMatch(/^COPY --from=build \/app\/dist\/bundle \.\/dist\/bundle$/m);
    expect(cmd).toBeDefined();
    expect((JSON.parse(cmd as string) as string[]).join(' ')).toBe('node dist/bundle/main.js');
  });
});

describe('deploy/kubernetes/shell-runner.yaml', () => {
  const docs = loadAll(read('deploy/kubernetes/shell-runner.yaml')) as any[];
  const deployment = docs.find((d) => d.kind === 'Deployment');
  const pod = deployment.spec.template;
  const container = pod.spec.containers[0];
  const podEnv = Object.fromEntries(
    container.env.map((e: { name: string; value: string }) => [e.name, e.value]),
  );
  const httpPort = container.ports.find((p: { name: string }) => p.name === 'http').containerPort;

  it('probes the endpoints the driver serves, on the port it listens on', () => {
    expect(container.livenessProbe.httpGet).toEqual({ path: '/health/live', port: 'http' });
    expect(container.readinessProbe.httpGet).toEqual({ path: '/health/ready', port: 'http' });
    expect(String(httpPort)).toBe(podEnv.PORT);
    expect(pod.metadata.annotations).toMatchObject({
      'prometheus.io/port': String(httpPort),
      'prometheus.io/path': '/metrics',
    });
  });

  it('gives the drain (shutdownTimeoutMs, 3 s for aborted handlers, the 5 s log flush) time before the kubelet kills the pod', () => {
    const drainMs = Number(podEnv.CONVEYOR_SHUTDOWN_TIMEOUT_MS) + 3000 + 5000;
    expect(pod.spec.terminationGracePeriodSeconds * 1000).toBeGreaterThan(drainMs);
  });
});
