// The PC platform around the vCPUs: the port and MMIO buses, the legacy devices on them and the
// interrupt controllers. KVM runs the local APICs (a split irqchip); the IOAPIC every interrupt
// line goes through, and the PIC pair Linux probes for, are models here. Devices live on this (the
// VM host's main) thread.

import { Bus } from '../devices/bus.js';
import { Ioapic } from '../devices/irqchip/ioapic.js';
import { Pic } from '../devices/irqchip/pic.js';
import { AcpiPm } from '../devices/legacy/acpi-pm.js';
import { I8042 } from '../devices/legacy/i8042.js';
import { CmosRtc } from '../devices/legacy/rtc.js';
import { Uart8250 } from '../devices/legacy/uart8250.js';
import { PciRoot } from '../devices/pci/host-bridge.js';
import { KvmMsiSink, MsiRoutes } from '../devices/pci/kvm-msi.js';
import { VirtioBlock } from '../devices/virtio/block/device.js';
import { VirtioConsole } from '../devices/virtio/console/device.js';
import { VirtioNet } from '../devices/virtio/net/device.js';
import type { VirtioDevice } from '../devices/virtio/pci/device.js';
import { KvmKicks } from '../devices/virtio/pci/kvm-kicks.js';
import { VirtioPciTransport } from '../devices/virtio/pci/transport.js';
import { VirtioRng } from '../devices/virtio/rng/device.js';
import type { Vm } from '../kvm/kvm.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { NetBackend } from '../net/backend.js';
import { PM1_CNT_LENGTH, PM1_EVT_LENGTH } from '../x86/acpi/tables.js';
import {
  IOAPIC_BASE,
  IOAPIC_SIZE,
  IRQ_ACPI_SCI,
  IRQ_COM1,
  IRQ_KEYBOARD,
  IRQ_RTC,
  PCI_MMIO32_END,
  PCI_MMIO32_START,
  PORT_ACPI_PM_TIMER,
  PORT_ACPI_PM1A_CONTROL,
  PORT_ACPI_PM1A_EVENT,
  PORT_COM1,
  PORT_I8042_COMMAND,
  PORT_I8042_DATA,
  PORT_NMI_STATUS,
  PORT_PCI_CONFIG_ADDRESS,
  PORT_PCI_CONFIG_DATA,
  PORT_PIC_ELCR,
  PORT_PIC_MASTER,
  PORT_PIC_SLAVE,
  PORT_RTC,
  pciIntxGsi,
} from '../x86/layout.js';
import type { ConsoleKind, DiskConfig } from './config.js';

export interface PlatformIo {
  onConsoleOutput(bytes: Uint8Array): void;
  log?(line: string): void;
  /** The network link went up or down (default: a log line). */
  onNetworkLink?(up: boolean, message: string): void;
}

/** The virtio devices on PCI bus 0 (virtio-rng is always there). */
export interface PlatformDevices {
  disks?: readonly DiskConfig[];
  /** 'virtio': terminal input goes to hvc0 (output of both consoles still reaches the terminal). */
  console?: ConsoleKind;
  /** virtio-net over this backend (the Machine's: it outlives the platform across reboots). */
  network?: { backend: NetBackend; mac: Uint8Array };
}

export interface Platform {
  pio: Bus;
  mmio: Bus;
  pci: PciRoot;
  virtio: readonly VirtioPciTransport[];
  sendConsoleInput(bytes: Uint8Array): void;
  /** A BREAK on the console's serial line, in order with the input; false on a virtio console. */
  sendConsoleBreak(): boolean;
  pressPowerButton(): void;
  /** The vCPUs are about to park: console input waits until resume(). */
  pause(): void;
  /** Resolves once no device has work in flight that would end in an interrupt. */
  quiesce(): Promise<void>;
  /** Hands over the console input that arrived while paused. */
  resume(): void;
  onPowerOff(handler: () => void): void;
  onReset(handler: () => void): void;
  /** Sends batched console output now rather than at the end of the event loop's turn. */
  flushConsole(): void;
  /** A local APIC took an EOI for `vector` (KVM_EXIT_IOAPIC_EOI). */
  endOfInterrupt(vector: number): void;
  /** Flushes console output and releases the devices; the KVM VM is closed right after. */
  close(): void;
}

/** Port 0x61 bit 5: PIT channel 2's output. */
const NMI_STATUS_PIT2_OUTPUT = 0x20;

/** Console input from the host: bytes, or a BREAK condition on the serial line. */
const BREAK = 'break';
type ConsoleInput = Uint8Array | typeof BREAK;

export function createPlatform(
  vm: Vm,
  memory: GuestMemory,
  io: PlatformIo,
  devices: PlatformDevices = {},
): Platform {
  const log = (line: string) => (io.log ? io.log(line) : process.stderr.write(`vireo: ${line}\n`));
  // GSI routes: each IOAPIC pin's message (KVM learns from them which vectors need an EOI exit),
  // then the MSI-X vectors of PCI devices as the guest programs them. None until the guest
  // programs something: a KVM_SET_GSI_ROUTING costs ~0.5 ms of a VM's start here.
  const msiRoutes = new MsiRoutes(vm, []);

  let powerOff = () => {};
  let reset = () => {};
  const pio = new Bus();
  const mmio = new Bus();

  const ioapic = new Ioapic(
    {
      deliver: (message) => {
        vm.signalMsi(message.addressLo, message.addressHi, message.data);
      },
      routeChanged: (pin, message) => msiRoutes.set(pin, message),
    },
    { log },
  );
  mmio.register(IOAPIC_BASE, IOAPIC_SIZE, ioapic, 'ioapic');
  // No line reaches the PIC (see pic.ts); Linux's probe finding it keeps ISA IRQ numbers as they are.
  const pic = new Pic();
  pio.register(PORT_PIC_MASTER, 2, pic.master, 'pic-master');
  pio.register(PORT_PIC_SLAVE, 2, pic.slave, 'pic-slave');
  pio.register(PORT_PIC_ELCR, 2, pic.elcr, 'pic-elcr');
  // There is no PIT: Linux times itself with kvmclock and the TSC-deadline LAPIC timer. Bit 5 of
  // this port (PIT channel 2's output) reads as set, so that a kernel that calibrates against the
  // PIT anyway finds its loop over at once and falls back, rather than waiting forever.
  pio.register(
    PORT_NMI_STATUS,
    1,
    { read: (_offset, data) => data.fill(NMI_STATUS_PIT2_OUTPUT), write: () => {} },
    'nmi-status',
  );

  // Host input waits here while the UART's buffer is full, and moves on as the guest reads. A
  // BREAK keeps its place among the bytes (SysRq: the key after it must come after it).
  const pendingInput: ConsoleInput[] = [];
  const pumpInput = () => {
    while (pendingInput.length > 0) {
      const head = pendingInput[0]!;
      if (head === BREAK) {
        if (!uart.receiveBreak()) return;
        pendingInput.shift();
        continue;
      }
      const taken = uart.receive(head);
      if (taken < head.length) {
        pendingInput[0] = head.subarray(taken);
        return;
      }
      pendingInput.shift();
    }
  };
  const uart = new Uart8250({
    irq: ioapic.line(IRQ_COM1),
    onOutput: (bytes) => io.onConsoleOutput(bytes),
    onDrain: pumpInput,
  });
  pio.register(PORT_COM1, 8, uart, 'com1');

  const i8042 = new I8042({ onReset: () => reset(), keyboardIrq: ioapic.line(IRQ_KEYBOARD) });
  pio.register(PORT_I8042_DATA, 1, i8042.dataPort, 'i8042-data');
  pio.register(PORT_I8042_COMMAND, 1, i8042.commandPort, 'i8042-command');

  const rtc = new CmosRtc({ irq: ioapic.line(IRQ_RTC), memoryBytes: memory.size });
  pio.register(PORT_RTC, 2, rtc, 'cmos-rtc');

  const pm = new AcpiPm({ sci: ioapic.line(IRQ_ACPI_SCI), onPowerOff: () => powerOff() });
  pio.register(PORT_ACPI_PM1A_EVENT, PM1_EVT_LENGTH, pm.eventBlock, 'acpi-pm1a-event');
  pio.register(PORT_ACPI_PM1A_CONTROL, PM1_CNT_LENGTH, pm.controlBlock, 'acpi-pm1a-control');
  pio.register(PORT_ACPI_PM_TIMER, 4, pm.timer, 'acpi-pm-timer');

  const pci = new PciRoot({ mmio, pio, log, onReset: () => reset() });
  pio.register(PORT_PCI_CONFIG_ADDRESS, 4, pci.addressPort, 'pci-config-address');
  pio.register(PORT_PCI_CONFIG_DATA, 4, pci.dataPort, 'pci-config-data');

  // virtio devices: kicks through ioeventfds, interrupts through MSI-X irqfds (INTx as fallback).
  const kicks = new KvmKicks(vm);
  const virtio: VirtioPciTransport[] = [];
  const msiSinks: KvmMsiSink[] = [];
  const addVirtio = (device: VirtioDevice) => {
    const slot = virtio.length + 1;
    const msi = new KvmMsiSink(vm, msiRoutes);
    const gsi = pciIntxGsi(slot);
    const transport = new VirtioPciTransport(device, {
      memory,
      msi,
      intx: ioapic.line(gsi),
      intxLine: gsi,
      kicks,
      log,
    });
    pci.attach(slot, transport.config);
    virtio.push(transport);
    msiSinks.push(msi);
  };
  (devices.disks ?? []).forEach((disk, index) => {
    const name = `vd${String.fromCharCode(0x61 + index)}`;
    addVirtio(
      new VirtioBlock({
        path: disk.path,
        readOnly: disk.readOnly,
        direct: disk.direct,
        name,
        serial: `vireo-${name}`,
      }),
    );
  });
  const virtioConsole =
    devices.console === 'virtio'
      ? new VirtioConsole({ onOutput: (bytes) => io.onConsoleOutput(bytes) })
      : undefined;
  if (virtioConsole) addVirtio(virtioConsole);
  let virtioNet: VirtioNet | undefined;
  if (devices.network) {
    const { backend, mac } = devices.network;
    virtioNet = new VirtioNet({
      mac,
      backend,
      log,
      onLinkChange: (up, reason) => {
        const message = `${backend.description}: ${reason}`;
        if (io.onNetworkLink) io.onNetworkLink(up, message);
        else log(`network link ${up ? 'up' : 'down'}: ${message}`);
      },
    });
    addVirtio(virtioNet);
  }
  addVirtio(new VirtioRng());
  // Firmware's job on a PC: place the BARs and turn decoding on, so the guest finds them ready.
  pci.assignResources({ memory: { start: PCI_MMIO32_START, end: PCI_MMIO32_END } });

  // POST codes: guests write port 0x80 as a delay; nothing needs to see them.
  pio.register(0x80, 1, { read: (_o, d) => d.fill(0xff), write: () => {} }, 'post-code');

  let paused = false;
  const heldInput: ConsoleInput[] = [];
  const deliverInput = (input: ConsoleInput) => {
    if (virtioConsole) {
      if (input !== BREAK) virtioConsole.receive(input);
    } else {
      pendingInput.push(input);
      pumpInput();
    }
  };
  const sendInput = (input: ConsoleInput) => {
    if (paused) heldInput.push(input);
    else deliverInput(input);
  };

  return {
    pio,
    mmio,
    pci,
    virtio,
    sendConsoleInput: sendInput,
    sendConsoleBreak: () => {
      if (virtioConsole) return false;
      sendInput(BREAK);
      return true;
    },
    pressPowerButton: () => pm.pressPowerButton(),
    pause: () => {
      paused = true;
      virtioNet?.pause();
    },
    quiesce: async () => {
      // What the guest wrote before it stopped belongs before the pause, not after it.
      uart.flush();
      await Promise.all(virtio.map((transport) => transport.device.quiesce?.()));
    },
    resume: () => {
      paused = false;
      for (const input of heldInput.splice(0)) deliverInput(input);
      virtioNet?.resume();
    },
    onPowerOff: (handler) => {
      powerOff = handler;
    },
    onReset: (handler) => {
      reset = handler;
    },
    endOfInterrupt: (vector) => ioapic.endOfInterrupt(vector),
    flushConsole: () => uart.flush(),
    close: () => {
      uart.flush();
      rtc.close();
      kicks.releaseWithVm();
      for (const transport of virtio) {
        if (process.env.VIREO_DEBUG) log(`${transport.device.name}: ${JSON.stringify(transport.metrics)}`);
        transport.close();
      }
      for (const msi of msiSinks) msi.close();
    },
  };
}
