import { resolve } from 'node:path';
import { ConveyorClient } from '@conveyor-ci/nestjs';
import { ConveyorControlPlane, DriverProcess } from '@conveyor-ci/testing';

/** The second step of the sample pipeline: the report-writer example driver (apps/report-writer). */
export const REPORT_WRITER = 'report-writer';
const ENTRY = resolve(__dirname, '../report-writer/main.js');

/** Starts the built report-writer against the local control plane; its own log shows warnings and errors only. */
export async function startReportWriter(
  plane: ConveyorControlPlane,
  sourceDriver: string,
  /** Its HTTP port (`/health`, `/metrics`). */
  port: number,
  /** More env: `--auth`'s certificates (NATS mTLS, PoP JWTs on the API), its dead-letter subject. */
  extraEnv: Record<string, string> = {},
): Promise<DriverProcess> {
  return new DriverProcess(
    ENTRY,
    {
      CONVEYOR_NATS_URL: plane.natsUrl,
      CONVEYOR_API_URL: plane.apiUrl,
      CONVEYOR_DRIVER_NAME: REPORT_WRITER,
      REPORT_SOURCE_DRIVER: sourceDriver,
      PORT: String(port),
      HOST: '127.0.0.1',
      ...extraEnv,
    },
    { onLine: ({ raw }) => /\b(WARN|ERROR)\b/.test(raw) && console.log(`  [${REPORT_WRITER}] ${raw}`) },
  );
}

/** Prints the `report` resource report-writer created for `resourceName`, read back through the API. */
export async function printReport(
  apiUrl: string,
  reportName: string,
  authorization?: () => Promise<string | undefined>,
): Promise<boolean> {
  const report = await new ConveyorClient({ apiUrl, authorization }).getResource('report', reportName);
  if (!report) {
    console.log(`\nno report resource "${reportName}" was created`);
    return false;
  }
  console.log(
    `\nreport resource ${report.resource}/${report.name} (version ${String(report.metadata?.version)}):`,
  );
  console.log(JSON.stringify(report.spec, null, 2));
  return true;
}
