// From a VM's network settings to a running backend.

import type { NetBackend } from './backend.js';
import type { Network } from './config.js';
import { PasstBackend, PasstError } from './passt.js';
import { TapBackend, TapError } from './tap.js';

/** The backend could not start (passt missing or refusing, no tap): the VM cannot have that network. */
export class NetBackendError extends Error {
  override name = 'NetBackendError';
}

/** Starts the backend `network` asks for; undefined for 'none'. Throws NetBackendError. */
export async function openNetBackend(
  network: Network,
  log: (line: string) => void,
): Promise<NetBackend | undefined> {
  try {
    switch (network.mode) {
      case 'none':
        return undefined;
      case 'user':
        return await PasstBackend.launch({ forwards: network.forwards, log });
      case 'tap':
        return TapBackend.open(network.tap, { log });
    }
  } catch (error) {
    if (error instanceof PasstError || error instanceof TapError) throw new NetBackendError(error.message);
    throw error;
  }
}
