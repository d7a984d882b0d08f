// Queue kicks through KVM ioeventfds: the guest's write to a notify address signals an eventfd
// inside the kernel and its vCPU runs on; this thread's event loop sees the eventfd readable.
import { EventFd, type Vm } from '../../../kvm/kvm.js';
import { watchFd } from './native-io.js';
import type { KickRegistrar } from './transport.js';

export class KvmKicks implements KickRegistrar {
  private vmClosing = false;

  constructor(private readonly vm: Vm) {}

  /**
   * The VM is about to be closed: kicks removed from now on leave their ioeventfds to go with it.
   * Each deassign waits for an SRCU grace period in KVM (milliseconds here); closing the VM frees
   * its whole I/O bus at once.
   */
  releaseWithVm(): void {
    this.vmClosing = true;
  }

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
      if (!this.vmClosing) {
        try {
          this.vm.ioeventfd(eventFd.fd, 'mmio', address, length, { deassign: true });
        } catch {
          // The VM is closed already: its ioeventfds went with it.
        }
      }
      eventFd.close();
    };
  }
}
