// The shape a port or MMIO bus has for the vCPU runner. core/src/devices/bus.ts's Bus satisfies
// it; the runner only needs these two calls. false = nothing claims that address.
import { EXIT_DATA, type ExitBuffer } from './exit.js';

export interface ExitBus {
  read(address: number, data: Uint8Array): boolean;
  write(address: number, data: Uint8Array): boolean;
}

/** Devices that run inside each vCPU's own worker thread (the fast path). */
export interface WorkerDevices {
  pio?: ExitBus;
  mmio?: ExitBus;
}

export interface WorkerDevicesContext {
  vcpuIndex: number;
  options: unknown;
}

/** A fast-path module exports this function; each vCPU worker calls it once. */
export type CreateWorkerDevices = (context: WorkerDevicesContext) => WorkerDevices | Promise<WorkerDevices>;

/**
 * Answers a port exit from `bus`: every element of a string instruction in turn. Returns false
 * (having touched nothing) when the bus has nothing at the port. Reads nothing claims stay
 * all-ones, which the addon put there.
 */
export function dispatchIo(bus: ExitBus, exit: ExitBuffer): boolean {
  const size = exit.size;
  const count = exit.count;
  const port = exit.port;
  const bytes = exit.bytes;
  const write = exit.isWrite;
  let data = bytes.subarray(EXIT_DATA, EXIT_DATA + size);
  if (!(write ? bus.write(port, data) : bus.read(port, data))) return false;
  for (let i = 1; i < count; i++) {
    data = bytes.subarray(EXIT_DATA + i * size, EXIT_DATA + (i + 1) * size);
    if (write) bus.write(port, data);
    else bus.read(port, data);
  }
  return true;
}

/** Answers an MMIO exit from `bus`; false when nothing is mapped there. */
export function dispatchMmio(bus: ExitBus, exit: ExitBuffer): boolean {
  const address = Number(exit.mmioAddress);
  const data = exit.bytes.subarray(EXIT_DATA, EXIT_DATA + exit.size);
  return exit.isWrite ? bus.write(address, data) : bus.read(address, data);
}
