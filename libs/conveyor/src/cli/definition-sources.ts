import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { ConveyorClient } from '../client/conveyor.client';
import type { ResourceDefinition } from '../protocol';

/**
 * Definitions from JSON files: each holds one definition (the body of `POST /resource-definitions`)
 * or an array of them; a directory stands for its `*.json` files. `names` (when given) picks those
 * and fails on one that is missing.
 */
export async function definitionsFromFiles(paths: string[], names: string[]): Promise<ResourceDefinition[]> {
  const files: string[] = [];
  for (const path of paths) {
    if ((await stat(path)).isDirectory()) {
      const entries = (await readdir(path)).filter((entry) => entry.endsWith('.json')).sort();
      files.push(...entries.map((entry) => join(path, entry)));
    } else files.push(path);
  }
  const found: ResourceDefinition[] = [];
  for (const file of files) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      throw new Error(`${file}: not JSON: ${(err as Error).message}`);
    }
    for (const definition of Array.isArray(parsed) ? parsed : [parsed]) {
      if (typeof definition !== 'object' || definition === null || typeof definition.name !== 'string')
        throw new Error(`${file}: a resource definition needs at least "name" and "schema"`);
      found.push(definition as ResourceDefinition);
    }
  }
  if (names.length === 0) return found;
  const missing = names.filter((name) => !found.some((d) => d.name === name));
  if (missing.length > 0) throw new Error(`not in the files: ${missing.map((n) => `"${n}"`).join(', ')}`);
  return found.filter((d) => names.includes(d.name));
}

/**
 * Definitions read from the API (`GET /resource-definitions/{name}`, with the client's auth). The
 * server lists no definitions (contract §10.1), so they are named.
 */
export async function definitionsFromApi(
  client: ConveyorClient,
  names: string[],
): Promise<ResourceDefinition[]> {
  if (names.length === 0)
    throw new Error(
      'name the definitions to read from the API (--resource NAME, repeatable): the API cannot list them',
    );
  const definitions = await Promise.all(names.map((name) => client.getResourceDefinition(name)));
  const missing = names.filter((_, i) => definitions[i] === null);
  if (missing.length > 0)
    throw new Error(
      `no such resource definition on ${client.apiUrl}: ${missing.map((n) => `"${n}"`).join(', ')}`,
    );
  return definitions as ResourceDefinition[];
}
