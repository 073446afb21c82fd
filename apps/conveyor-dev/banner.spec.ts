import { execFileSync } from 'node:child_process';
import { conveyorDevBanner, curl, runStartedLines } from './banner';

/** What /bin/sh makes of a printed line's arguments (after `curl`), without running curl. */
function words(line: string): string[] {
  const out = execFileSync('/bin/sh', ['-c', `printf '%s\\n' ${line.replace(/^curl /, '')}`], {
    encoding: 'utf8',
    env: { ...process.env, CONVEYOR_TOKEN: 'tok' },
  });
  return out.trimEnd().split('\n');
}

describe('the conveyor:dev banner', () => {
  const target = { apiUrl: 'http://127.0.0.1:8080', natsUrl: 'nats://127.0.0.1:4222' };

  it("prints curls a shell reads back to the exact JSON, a quote (') included", () => {
    const body = { name: "it's", spec: { run: 'echo "a" && echo $HOME' } };
    const args = words(curl(target, 'POST', '/resources', body));
    expect(args.slice(0, 3)).toEqual(['-sS', '-X', 'POST']);
    expect(JSON.parse(args[args.length - 1])).toEqual(body);
  });

  it('lets the shell fill in $(date +%s), so the same resource curl pasted twice makes two resources', () => {
    const line = conveyorDevBanner(target, true)
      .find((l) => l.includes("/resources'"))!
      .trim();
    const name = JSON.parse(words(line).at(-1)!).name;
    expect(name).toMatch(/^hello-\d{10}$/);
  });

  it('adds the bearer token from $CONVEYOR_TOKEN when secured, and the TLS env to the cancel line', () => {
    const secured = {
      ...target,
      auth: {
        tokenVariable: 'CONVEYOR_TOKEN',
        driverEnv: {
          CONVEYOR_TLS_CA: '/c/ca.pem',
          CONVEYOR_TLS_CERT: '/c/c.pem',
          CONVEYOR_TLS_KEY: '/c/k.pem',
          CONVEYOR_API_AUTH: 'true',
        },
      },
    };
    expect(words(curl(secured, 'GET', '/logs?runid=r1'))).toEqual([
      '-sS',
      '-H',
      'Authorization: Bearer tok',
      'http://127.0.0.1:8080/logs?runid=r1',
    ]);
    expect(runStartedLines(secured, 'r1', 'pipeline/x').at(-1)).toBe(
      '      cancel: CONVEYOR_NATS_URL=nats://127.0.0.1:4222 CONVEYOR_TLS_CA=/c/ca.pem CONVEYOR_TLS_CERT=/c/c.pem CONVEYOR_TLS_KEY=/c/k.pem npm run cancel -- r1 stop',
    );
  });
});
