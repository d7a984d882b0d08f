// The PC platform around the vCPUs: the port and MMIO buses, the legacy devices on them and the
// interrupt lines into KVM's in-kernel irqchip. Devices live on this (the VM host's main) thread.

import { Bus } from '../devices/bus.js';
import type { IrqLine } from '../devices/irq.js';
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
import { defaultIrqchipRoutes } from '../kvm/structs.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { NetBackend } from '../net/backend.js';
import { PM1_CNT_LENGTH, PM1_EVT_LENGTH } from '../x86/acpi/tables.js';
import {
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
  PORT_PCI_CONFIG_ADDRESS,
  PORT_PCI_CONFIG_DATA,
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
  /** Flushes console output and releases the devices; the KVM VM is closed right after. */
  close(): void;
}

/** Console input from the host: bytes, or a BREAK condition on the serial line. */
const BREAK = 'break';
type ConsoleInput = Uint8Array | typeof BREAK;

/** A GSI of KVM's in-kernel irqchip as a level-triggered line. */
function kvmIrqLine(vm: Vm, gsi: number): IrqLine {
  return { set: (level) => vm.irqLine(gsi, level) };
}

export function createPlatform(
  vm: Vm,
  memory: GuestMemory,
  io: PlatformIo,
  devices: PlatformDevices = {},
): Platform {
  const log = (line: string) => (io.log ? io.log(line) : process.stderr.write(`vireo: ${line}\n`));
  // ISA IRQ 0 enters the IOAPIC at pin 2, as the MADT's interrupt source override tells the guest.
  // MSI-X vectors of PCI devices get routes above those as the guest programs them.
  const msiRoutes = new MsiRoutes(vm, defaultIrqchipRoutes());
  vm.setGsiRouting(msiRoutes.routes());

  let powerOff = () => {};
  let reset = () => {};
  const pio = new Bus();
  const mmio = new Bus();

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
    irq: kvmIrqLine(vm, IRQ_COM1),
    onOutput: (bytes) => io.onConsoleOutput(bytes),
    onDrain: pumpInput,
  });
  pio.register(PORT_COM1, 8, uart, 'com1');

  const i8042 = new I8042({ onReset: () => reset(), keyboardIrq: kvmIrqLine(vm, IRQ_KEYBOARD) });
  pio.register(PORT_I8042_DATA, 1, i8042.dataPort, 'i8042-data');
  pio.register(PORT_I8042_COMMAND, 1, i8042.commandPort, 'i8042-command');

  const rtc = new CmosRtc({ irq: kvmIrqLine(vm, IRQ_RTC), memoryBytes: memory.size });
  pio.register(PORT_RTC, 2, rtc, 'cmos-rtc');

  const pm = new AcpiPm({ sci: kvmIrqLine(vm, IRQ_ACPI_SCI), onPowerOff: () => powerOff() });
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
      intx: kvmIrqLine(vm, gsi),
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

  // Ports guests poke on every PC and that need no model: POST codes and the PIC's ELCR are
  // handled in the kernel or harmless; 0x80 is a delay port.
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
