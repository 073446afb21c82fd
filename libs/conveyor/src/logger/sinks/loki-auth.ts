import type { LokiConfig } from '../../module/log.options';

/**
 * Tenant and auth headers of every request to Loki (pushes and the health probe). A file of its
 * own: the health probe needs them without loading the sink, which only a driver with Loki loads.
 */
export function lokiAuthHeaders(config: LokiConfig): Record<string, string> {
  const headers: Record<string, string> = {};
  if (config.tenant) headers['X-Scope-OrgID'] = config.tenant;
  if (config.bearerToken !== undefined) headers.Authorization = `Bearer ${config.bearerToken}`;
  else if (config.username !== undefined) {
    const pair = `${config.username}:${config.password ?? ''}`;
    headers.Authorization = `Basic ${Buffer.from(pair).toString('base64')}`;
  }
  return headers;
}
