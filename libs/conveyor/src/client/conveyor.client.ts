import { HttpService } from '@nestjs/axios';
import { Inject, Injectable } from '@nestjs/common';
import { isAxiosError } from 'axios';
import { firstValueFrom } from 'rxjs';
import { CONVEYOR_CONFIG } from '../module/conveyor.constants';
import type { ConveyorConfig } from '../module/conveyor.options';
import { Resource, assertSubjectToken } from '../protocol';
import { ConveyorApiError } from './conveyor-api.error';

/** Per-request ceiling: a hung API must not hold a run slot for long. */
const REQUEST_TIMEOUT_MS = 10_000;

/** The Conveyor HTTP API (contract §10.1) at `apiUrl`. Injectable anywhere the module is imported. */
@Injectable()
export class ConveyorClient {
  constructor(
    private readonly http: HttpService,
    @Inject(CONVEYOR_CONFIG) private readonly config: ConveyorConfig,
  ) {}

  /**
   * `GET /resources/{type}/{name}`.
   * @returns the resource, or `null` when it does not exist (the server's 500 "not found" included).
   * @throws ConveyorApiError on any other failure (network errors have status 0).
   */
  async getResource<Spec = unknown>(type: string, name: string): Promise<Resource<Spec> | null> {
    // Names are not validated by the server; an unsafe one would address another route.
    const path = `/resources/${encodeURIComponent(assertSubjectToken('resource type', type))}/${encodeURIComponent(name)}`;
    try {
      return await this.request<Resource<Spec>>('GET', path);
    } catch (err) {
      if (err instanceof ConveyorApiError && err.isNotFound) return null;
      throw err;
    }
  }

  private async request<T>(method: 'GET', path: string): Promise<T> {
    try {
      const response = await firstValueFrom(
        this.http.request<T>({
          method,
          url: `${this.config.apiUrl}${path}`,
          timeout: REQUEST_TIMEOUT_MS,
          headers: { 'Content-Type': 'application/json' },
        }),
      );
      return response.data;
    } catch (err) {
      if (!isAxiosError(err)) throw err;
      const data = err.response?.data as unknown;
      const body =
        typeof data === 'string'
          ? data
          : typeof (data as { error?: unknown })?.error === 'string'
            ? (data as { error: string }).error
            : (err.message ?? '');
      throw new ConveyorApiError(err.response?.status ?? 0, body, method, path);
    }
  }
}
