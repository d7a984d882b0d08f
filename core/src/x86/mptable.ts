// Intel MultiProcessor Specification 1.4 tables: how Linux finds the CPUs and the IOAPIC when
// ACPI is absent or disabled (with ACPI it uses the MADT instead).
import type { GuestMemory } from '../memory/guest-memory.js';
import { ByteWriter, fixChecksum, hex } from './bytes.js';
import {
  BDA_BASE_MEMORY_KIB,
  BDA_EBDA_SEGMENT,
  EBDA_END,
  EBDA_START,
  IOAPIC_BASE,
  IOAPIC_VERSION,
  LAPIC_BASE,
  MP_CONFIG_OVERFLOW,
} from './layout.js';

const MP_ENTRY_PROCESSOR = 0;
const MP_ENTRY_BUS = 1;
const MP_ENTRY_IOAPIC = 2;
const MP_ENTRY_IO_INTERRUPT = 3;
const MP_ENTRY_LOCAL_INTERRUPT = 4;
const MP_INT = 0;
const MP_NMI = 1;
const MP_EXTINT = 3;
const CPU_ENABLED = 1;
const CPU_BOOTSTRAP = 2;
const LAPIC_VERSION = 0x14;
const BUS_PCI = 0;
const BUS_ISA = 1;
/** Polarity active high (1) and level trigger (3 << 2), as the ACPI SCI is wired. */
export const MP_IRQ_LEVEL_HIGH = 0x0d;
const FLOATING_POINTER_SIZE = 16;
const CONFIG_HEADER_SIZE = 44;

export interface InterruptWiring {
  /** vCPUs: APIC IDs 0..cpus-1; CPU 0 is the bootstrap processor. */
  cpus: number;
  ioapicId: number;
  /** IOAPIC pin the ISA timer (IRQ0) arrives on: 2 as on PCs (needs GSI 0 routed to pin 2), or 0. */
  irq0Gsi: 0 | 2;
  /** ISA IRQ of the ACPI SCI, wired level-triggered active-high. */
  sciIrq: number;
}

/** The MP configuration table (header + entries) to be placed at `address`, checksummed. */
export function buildMpConfigTable(w: InterruptWiring): Uint8Array {
  const entries = new ByteWriter();
  let count = 0;
  for (let cpu = 0; cpu < w.cpus; cpu++) {
    entries
      .u8(MP_ENTRY_PROCESSOR)
      .u8(cpu)
      .u8(LAPIC_VERSION)
      .u8(CPU_ENABLED | (cpu === 0 ? CPU_BOOTSTRAP : 0))
      .u32(0x600) // family 6
      .u32(0x201) // FPU, APIC
      .zeros(8);
    count++;
  }
  entries.u8(MP_ENTRY_BUS).u8(BUS_PCI).ascii('PCI', 6);
  entries.u8(MP_ENTRY_BUS).u8(BUS_ISA).ascii('ISA', 6);
  count += 2;
  entries.u8(MP_ENTRY_IOAPIC).u8(w.ioapicId).u8(IOAPIC_VERSION).u8(1).u32(IOAPIC_BASE);
  count++;
  for (let irq = 0; irq < 16; irq++) {
    // With the timer moved to pin 2, IRQ2 (the PIC cascade) has no pin of its own.
    if (irq === 2 && w.irq0Gsi === 2) continue;
    const pin = irq === 0 ? w.irq0Gsi : irq;
    const flags = irq === w.sciIrq ? MP_IRQ_LEVEL_HIGH : 0;
    entries.u8(MP_ENTRY_IO_INTERRUPT).u8(MP_INT).u16(flags).u8(BUS_ISA).u8(irq).u8(w.ioapicId).u8(pin);
    count++;
  }
  entries.u8(MP_ENTRY_LOCAL_INTERRUPT).u8(MP_EXTINT).u16(0).u8(BUS_ISA).u8(0).u8(0xff).u8(0);
  entries.u8(MP_ENTRY_LOCAL_INTERRUPT).u8(MP_NMI).u16(0).u8(BUS_ISA).u8(0).u8(0xff).u8(1);
  count += 2;

  const body = entries.finish();
  const table = new ByteWriter()
    .ascii('PCMP', 4)
    .u16(CONFIG_HEADER_SIZE + body.length)
    .u8(4) // spec revision 1.4
    .u8(0) // checksum
    .ascii('VIREO', 8)
    .ascii('VIREO VM', 12)
    .u32(0) // OEM table
    .u16(0)
    .u16(count)
    .u32(LAPIC_BASE)
    .u16(0) // extended table length
    .u8(0)
    .u8(0)
    .bytes(body)
    .finish();
  fixChecksum(table, 7);
  return table;
}

/** The 16-byte MP floating pointer structure pointing at the configuration table. */
export function buildMpFloatingPointer(configAddress: number): Uint8Array {
  const fp = new ByteWriter()
    .ascii('_MP_', 4)
    .u32(configAddress)
    .u8(1) // length in 16-byte units
    .u8(4)
    .u8(0) // checksum
    .u8(0) // feature 1: a configuration table is present
    .u8(0) // feature 2: virtual wire mode (no IMCR)
    .zeros(3)
    .finish();
  fixChecksum(fp, 10);
  return fp;
}

/**
 * Writes the MP floating pointer at the start of the EBDA and the configuration table after it
 * (or at MP_CONFIG_OVERFLOW when too many vCPUs make it outgrow the EBDA), and the BIOS data
 * area words that lead the kernel to the EBDA. Returns the configuration table's address.
 */
export function writeMpTable(mem: GuestMemory, wiring: InterruptWiring): number {
  if (!Number.isInteger(wiring.cpus) || wiring.cpus < 1 || wiring.cpus > 254) {
    throw new Error(`MP table: ${wiring.cpus} vCPUs is outside 1..254`);
  }
  const config = buildMpConfigTable(wiring);
  const inEbda = EBDA_START + FLOATING_POINTER_SIZE;
  const configAddress = inEbda + config.length <= EBDA_END ? inEbda : MP_CONFIG_OVERFLOW;
  if (configAddress === MP_CONFIG_OVERFLOW && !mem.contains(configAddress, config.length)) {
    throw new Error(`MP table: no room for ${config.length} bytes at ${hex(configAddress)}`);
  }
  mem.write(EBDA_START, buildMpFloatingPointer(configAddress));
  mem.write(configAddress, config);
  mem.writeU16(BDA_EBDA_SEGMENT, EBDA_START >> 4);
  mem.writeU16(BDA_BASE_MEMORY_KIB, EBDA_START >> 10);
  return configAddress;
}
