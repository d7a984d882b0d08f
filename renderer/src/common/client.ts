// The renderer's typed API client: method names, params and results come from the schema, whatever
// carries them (WebSocket in browser mode, IPC in Electron).

import {
  ApiError,
  type ConsoleOutputNotification,
  describeSpecIssues,
  ErrorCode,
  type MethodName,
  type MethodParams,
  type MethodResult,
  type SpecIssue,
  type VmEvent,
} from '../../../core/src/api/schema.js';
import type { Transport } from './transport.js';

/** Errors as the API reports them; IPC may hand over plain objects with code and message. */
function asApiError(error: unknown): Error {
  if (error instanceof ApiError) return error;
  if (typeof error === 'object' && error !== null && typeof (error as ApiError).code === 'number') {
    const { code, message, data } = error as ApiError;
    return new ApiError(code, String(message), data);
  }
  return error instanceof Error ? error : new Error(String(error));
}

export class VireoClient {
  constructor(private readonly transport: Transport) {}

  async call<M extends MethodName>(method: M, params: MethodParams<M>): Promise<MethodResult<M>> {
    try {
      return (await this.transport.call(method, params)) as MethodResult<M>;
    } catch (error) {
      throw asApiError(error);
    }
  }

  onEvent(listener: (event: VmEvent) => void): () => void {
    return this.transport.on('event', (params) => listener(params as VmEvent));
  }

  onConsoleOutput(listener: (output: ConsoleOutputNotification) => void): () => void {
    return this.transport.on('console.output', (params) => listener(params as ConsoleOutputNotification));
  }

  onClose(listener: (reason: string) => void): () => void {
    return this.transport.onClose?.(listener) ?? (() => {});
  }
}

/** A sentence for people: the daemon's message, with the fields it names where it names some. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError && error.code === ErrorCode.invalidParams && Array.isArray(error.data)) {
    return `${error.message}: ${describeSpecIssues(error.data as SpecIssue[])}`;
  }
  return error instanceof Error ? error.message : String(error);
}
