// Worker-local devices for the exit benchmark and the fast-path tests: loaded inside each vCPU
// worker by VcpuSet (workerDevices.module), so their ports are answered without leaving the
// vCPU's thread. Stateless by design: each worker has its own instance.
import type { CreateWorkerDevices, ExitBus } from './exit-bus.js';

export interface FastPathOptions {
  /** Ports answered in the worker: writes are dropped, reads return `readValue`. */
  ports: number[];
  readValue?: number;
}

export const createWorkerDevices: CreateWorkerDevices = ({ options }) => {
  const { ports, readValue = 0 } = (options ?? { ports: [0x80] }) as FastPathOptions;
  const claimed = new Set(ports);
  const pio: ExitBus = {
    read(port, data) {
      if (!claimed.has(port)) return false;
      data.fill(readValue & 0xff);
      return true;
    },
    write(port) {
      return claimed.has(port);
    },
  };
  return { pio };
};
