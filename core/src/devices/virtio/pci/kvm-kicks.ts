// Queue kicks through KVM ioeventfds: the guest's write to a notify address signals an eventfd
// inside the kernel and its vCPU runs on; this thread's event loop sees the eventfd readable.
import { EventFd, type Vm } from '../../../kvm/kvm.js';
import { watchFd } from './native-io.js';
import type { KickRegistrar } from './transport.js';

export class KvmKicks implements KickRegistrar {
  constructor(private readonly vm: Vm) {}

  register(address: number, length: number, onKick: () => void): () => void {
    const eventFd = new EventFd();
    try {
      this.vm.ioeventfd(eventFd.fd, 'mmio', address, length);
    } catch (error) {
      eventFd.close();
      throw error;
    }
    const stop = watchFd(eventFd.fd, () => {
      if (eventFd.read() !== null) onKick();
    });
    return () => {
      stop();
      try {
        this.vm.ioeventfd(eventFd.fd, 'mmio', address, length, { deassign: true });
      } catch {
        // The VM is closed already: its ioeventfds went with it.
      }
      eventFd.close();
    };
  }
}
