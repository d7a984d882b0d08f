// MSI-X vectors delivered by KVM: each vector owns a GSI with an MSI route (the message the guest
// wrote into the table) and an eventfd bound to that GSI with irqfd. Triggering a vector is one
// eventfd write; KVM injects the interrupt without a vCPU exit or any JS on the vCPU's side.
// KVM_SET_GSI_ROUTING replaces the whole table, so one MsiRoutes per VM holds every route.

import { EventFd, type Vm } from '../../kvm/kvm.js';
import type { GsiRoute } from '../../kvm/structs.js';
import { IOAPIC_PINS } from '../../x86/layout.js';
import type { MsiMessage, MsiSink } from './msix.js';

/** First GSI handed to MSI routes: those below are the IOAPIC's pins. */
export const FIRST_MSI_GSI = IOAPIC_PINS;
/** KVM_MAX_IRQ_ROUTES is 4096. */
const LAST_GSI = 4095;

/** What MsiRoutes needs from a VM (a KVM Vm, or a recorder in tests). */
export interface RoutingVm {
  setGsiRouting(routes: readonly GsiRoute[]): void;
}

export class MsiRoutes {
  private nextGsi = FIRST_MSI_GSI;
  private readonly msi = new Map<number, MsiMessage>();

  constructor(
    private readonly vm: RoutingVm,
    private readonly baseRoutes: readonly GsiRoute[],
  ) {}

  allocateGsi(): number {
    if (this.nextGsi > LAST_GSI) throw new Error('out of GSIs for MSI routes');
    return this.nextGsi++;
  }

  /** Points `gsi` at `message`, or removes its route (undefined). */
  set(gsi: number, message: MsiMessage | undefined): void {
    if (message) this.msi.set(gsi, message);
    else if (!this.msi.delete(gsi)) return;
    this.commit();
  }

  routes(): GsiRoute[] {
    const routes: GsiRoute[] = [...this.baseRoutes];
    for (const [gsi, m] of this.msi) {
      routes.push({ gsi, kind: 'msi', addressLo: m.addressLo, addressHi: m.addressHi, data: m.data });
    }
    return routes;
  }

  private commit(): void {
    this.vm.setGsiRouting(this.routes());
  }
}

/** An MsiSink for one function's MSI-X table: a GSI and an irqfd per vector, made on first use. */
export class KvmMsiSink implements MsiSink {
  private readonly vectors = new Map<number, { gsi: number; eventFd: EventFd }>();

  constructor(
    private readonly vm: Vm,
    private readonly routes: MsiRoutes,
  ) {}

  route(vector: number, message: MsiMessage | undefined): void {
    let entry = this.vectors.get(vector);
    if (!entry) {
      if (!message) return;
      const gsi = this.routes.allocateGsi();
      const eventFd = new EventFd();
      this.vm.irqfd(eventFd.fd, gsi);
      entry = { gsi, eventFd };
      this.vectors.set(vector, entry);
    }
    this.routes.set(entry.gsi, message);
  }

  trigger(vector: number): void {
    this.vectors.get(vector)?.eventFd.write(1n);
  }

  close(): void {
    for (const { gsi, eventFd } of this.vectors.values()) {
      try {
        this.vm.irqfd(eventFd.fd, gsi, { deassign: true });
        this.routes.set(gsi, undefined);
      } catch {
        // The VM is gone already; closing the eventfd releases KVM's side too.
      }
      eventFd.close();
    }
    this.vectors.clear();
  }
}
