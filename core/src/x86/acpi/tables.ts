// ACPI tables for a Vireo machine: RSDP v2 -> XSDT -> FADT (-> FACS, DSDT), MADT, MCFG. Built as
// bytes with correct checksums, then written below 1 MiB where the kernel looks for the RSDP.
import type { GuestMemory } from '../../memory/guest-memory.js';
import { ByteWriter, fixChecksum, hex } from '../bytes.js';
import {
  ACPI_RSDP,
  ACPI_TABLES,
  ACPI_TABLES_END,
  IOAPIC_BASE,
  LAPIC_BASE,
  PCI_FIRST_SLOT,
  PCI_LAST_SLOT,
  PCI_MMIO32_END,
  PCI_MMIO32_START,
  PCIE_ECAM,
  PCIE_ECAM_SIZE,
  PORT_ACPI_PM_TIMER,
  PORT_ACPI_PM1A_CONTROL,
  PORT_ACPI_PM1A_EVENT,
  PORT_PCI_CONFIG_ADDRESS,
  pciIntxGsi,
} from '../layout.js';
import {
  type Aml,
  device,
  dwordConst,
  dwordMemory,
  eisaId,
  integer,
  ioPorts,
  memory32Fixed,
  name,
  pkg,
  resourceTemplate,
  scope,
  wordBusNumber,
  wordIo,
} from './aml.js';

export const OEM_ID = 'VIREO';
export const OEM_TABLE_ID = 'VIREOVM';
const CREATOR_ID = 'VIRO';
const SDT_HEADER_SIZE = 36;

/**
 * The SLP_TYP value `_S5_` announces: a guest powers off by writing
 * (S5_SLP_TYP << PM1_CNT_SLP_TYP_SHIFT) | PM1_CNT_SLP_EN to the PM1a control register.
 */
export const S5_SLP_TYP = 5;
export const PM1_CNT_SLP_TYP_SHIFT = 10;
export const PM1_CNT_SLP_TYP_MASK = 0x7 << PM1_CNT_SLP_TYP_SHIFT;
export const PM1_CNT_SLP_EN = 1 << 13;
/** SCI_EN: reads as set because the machine is always in ACPI mode (FADT SMI_CMD = 0). */
export const PM1_CNT_SCI_EN = 1 << 0;
/** PM1 status/enable bit of the fixed-feature power button. */
export const PM1_EVT_PWRBTN = 1 << 8;
export const PM1_EVT_LENGTH = 4;
export const PM1_CNT_LENGTH = 2;
export const PM_TMR_LENGTH = 4;

/** A system description table: the 36-byte header, then `body`, checksummed. */
export function sdt(signature: string, revision: number, body: Uint8Array): Uint8Array {
  const table = new ByteWriter()
    .ascii(signature, 4)
    .u32(SDT_HEADER_SIZE + body.length)
    .u8(revision)
    .u8(0)
    .ascii(OEM_ID, 6)
    .ascii(OEM_TABLE_ID, 8)
    .u32(1)
    .ascii(CREATOR_ID, 4)
    .u32(1)
    .bytes(body)
    .finish();
  fixChecksum(table, 9);
  return table;
}

/** RSDP revision 2 (ACPI 2.0+): 36 bytes, pointing at the XSDT only. */
export function buildRsdp(xsdtAddr: number): Uint8Array {
  const rsdp = new ByteWriter()
    .ascii('RSD PTR ', 8)
    .u8(0)
    .ascii(OEM_ID, 6)
    .u8(2)
    .u32(0) // no RSDT: an ACPI 2.0 OS uses the XSDT
    .u32(36)
    .u64(xsdtAddr)
    .u8(0)
    .zeros(3)
    .finish();
  fixChecksum(rsdp, 8, 0, 20);
  fixChecksum(rsdp, 32, 0, 36);
  return rsdp;
}

export function buildXsdt(tableAddrs: readonly number[]): Uint8Array {
  const body = new ByteWriter();
  for (const a of tableAddrs) body.u64(a);
  return sdt('XSDT', 1, body.finish());
}

export interface MadtOptions {
  cpus: number;
  ioapicId: number;
  /** GSI of ISA IRQ0: 2 adds the PC-style override (needs GSI 0 routed to IOAPIC pin 2), 0 none. */
  irq0Gsi: 0 | 2;
  sciIrq: number;
}

const MADT_LAPIC = 0;
const MADT_IOAPIC = 1;
const MADT_ISO = 2;
const MADT_LAPIC_NMI = 4;
/** MPS INTI flags: active high (1) and level triggered (3 << 2). */
export const INTI_LEVEL_HIGH = 0x000d;
/** MPS INTI flags: conforms to the bus (for ISA: edge, active high). */
export const INTI_CONFORMS = 0x0000;

export function buildMadt(o: MadtOptions): Uint8Array {
  const body = new ByteWriter().u32(LAPIC_BASE).u32(1); // PCAT_COMPAT: dual 8259s present
  for (let cpu = 0; cpu < o.cpus; cpu++) body.u8(MADT_LAPIC).u8(8).u8(cpu).u8(cpu).u32(1);
  body.u8(MADT_IOAPIC).u8(12).u8(o.ioapicId).u8(0).u32(IOAPIC_BASE).u32(0);
  if (o.irq0Gsi !== 0) body.u8(MADT_ISO).u8(10).u8(0).u8(0).u32(o.irq0Gsi).u16(INTI_CONFORMS);
  body.u8(MADT_ISO).u8(10).u8(0).u8(o.sciIrq).u32(o.sciIrq).u16(INTI_LEVEL_HIGH);
  body.u8(MADT_LAPIC_NMI).u8(6).u8(0xff).u16(INTI_CONFORMS).u8(1); // NMI on LINT1 of every CPU
  return sdt('APIC', 5, body.finish());
}

export function buildMcfg(): Uint8Array {
  const lastBus = PCIE_ECAM_SIZE / 0x10_0000 - 1;
  const body = new ByteWriter().zeros(8).u64(PCIE_ECAM).u16(0).u8(0).u8(lastBus).u32(0).finish();
  return sdt('MCFG', 1, body);
}

/** FACS: no checksum; the OS keeps its global lock and waking vector here. */
export function buildFacs(): Uint8Array {
  return new ByteWriter()
    .ascii('FACS', 4)
    .u32(64)
    .u32(0)
    .u32(0)
    .u32(0)
    .u32(0)
    .u64(0)
    .u8(2)
    .zeros(31)
    .finish();
}

const GAS_SYSTEM_IO = 1;
const ACCESS_WORD = 2;
const ACCESS_DWORD = 3;

function gas(w: ByteWriter, space: number, bitWidth: number, access: number, address: number): void {
  w.u8(space).u8(bitWidth).u8(0).u8(access).u64(address);
}

const FADT_WBINVD = 1 << 0;
const FADT_PROC_C1 = 1 << 2;
/** Set: no fixed-feature sleep button. (PWR_BUTTON, bit 4, stays clear: the power button is a fixed feature.) */
const FADT_SLP_BUTTON = 1 << 5;
/** Set: no RTC wake status in the fixed registers. */
const FADT_FIX_RTC = 1 << 6;
export const FADT_PWR_BUTTON = 1 << 4;
export const FADT_HW_REDUCED_ACPI = 1 << 20;
/** IA-PC boot architecture flags: legacy devices, 8042 present, no VGA. */
export const IAPC_BOOT_ARCH = 0x1 | 0x2 | 0x4;
export const FADT_FLAGS = FADT_WBINVD | FADT_PROC_C1 | FADT_SLP_BUTTON | FADT_FIX_RTC;

/**
 * FADT revision 6 (276 bytes). Always in ACPI mode (SMI_CMD 0), PM1a event/control and a 24-bit
 * PM timer at the fixed I/O ports, SCI on IRQ 9, no GPE block, no reset register (the i8042
 * resets the machine).
 */
export function buildFadt(dsdtAddr: number, facsAddr: number, sciIrq: number): Uint8Array {
  const w = new ByteWriter();
  // The FACS only through X_FIRMWARE_CTRL: the spec wants FIRMWARE_CTRL zero when that is set.
  w.u32(0).u32(dsdtAddr);
  w.u8(0).u8(0); // reserved, preferred PM profile unspecified
  w.u16(sciIrq);
  w.u32(0).u8(0).u8(0).u8(0).u8(0); // SMI_CMD, ACPI_ENABLE, ACPI_DISABLE, S4BIOS_REQ, PSTATE_CNT
  w.u32(PORT_ACPI_PM1A_EVENT).u32(0).u32(PORT_ACPI_PM1A_CONTROL).u32(0).u32(0).u32(PORT_ACPI_PM_TIMER);
  w.u32(0).u32(0); // GPE0, GPE1 blocks
  w.u8(PM1_EVT_LENGTH).u8(PM1_CNT_LENGTH).u8(0).u8(PM_TMR_LENGTH).u8(0).u8(0).u8(0).u8(0);
  // C2/C3 latencies above 100/1000 us tell the OS those states are not available.
  w.u16(101).u16(1001).u16(0).u16(0);
  w.u8(0).u8(0).u8(0).u8(0).u8(0); // duty offset/width, day/month alarm, century
  w.u16(IAPC_BOOT_ARCH).u8(0);
  w.u32(FADT_FLAGS);
  w.zeros(12).u8(0); // RESET_REG, RESET_VALUE: none
  w.u16(0).u8(0); // ARM boot arch, FADT minor version
  w.u64(facsAddr).u64(dsdtAddr);
  gas(w, GAS_SYSTEM_IO, PM1_EVT_LENGTH * 8, ACCESS_WORD, PORT_ACPI_PM1A_EVENT);
  w.zeros(12);
  gas(w, GAS_SYSTEM_IO, PM1_CNT_LENGTH * 8, ACCESS_WORD, PORT_ACPI_PM1A_CONTROL);
  w.zeros(12 * 2); // PM1b control, PM2 control
  gas(w, GAS_SYSTEM_IO, PM_TMR_LENGTH * 8, ACCESS_DWORD, PORT_ACPI_PM_TIMER);
  w.zeros(12 * 4); // GPE0, GPE1, sleep control, sleep status
  w.ascii('', 8, 0); // hypervisor vendor identity
  return sdt('FACP', 6, w.finish());
}

/**
 * The root bridge's `_PRT`: for every slot and INTx pin, the GSI it drives (pciIntxGsi), as
 * `Package { slot << 16 | 0xFFFF, pin, 0, gsi }` (source 0: a GSI, no link device). A guest
 * without MSI-X (or with it turned off) routes legacy PCI interrupts from this.
 */
export function pciRoutingTable(): Aml {
  const entries: Aml[] = [];
  for (let slot = PCI_FIRST_SLOT; slot <= PCI_LAST_SLOT; slot++) {
    for (let pin = 0; pin < 4; pin++) {
      entries.push(
        pkg([integer(slot * 0x1_0000 + 0xffff), integer(pin), integer(0), integer(pciIntxGsi(slot, pin))]),
      );
    }
  }
  return name('_PRT', pkg(entries));
}

/**
 * The DSDT's AML: the PCI root bridge with its INTx routing, a motherboard device reserving the
 * ECAM, and `_S5_`.
 */
export function buildDsdtAml(opts: { ecam: boolean }): Aml {
  const rootBridge = device('PCI0', [
    name('_HID', dwordConst(eisaId('PNP0A03'))),
    name('_SEG', integer(0)),
    name('_BBN', integer(0)),
    name('_UID', integer(0)),
    name(
      '_CRS',
      resourceTemplate([
        wordBusNumber(0, 0xff),
        ioPorts(PORT_PCI_CONFIG_ADDRESS, 8),
        wordIo(0x0000, 0x0cf7),
        wordIo(0x0d00, 0xffff),
        dwordMemory(PCI_MMIO32_START, PCI_MMIO32_END - 1),
      ]),
    ),
    pciRoutingTable(),
  ]);
  const sb: Aml[] = [rootBridge];
  if (opts.ecam) {
    // Linux trusts an MCFG region only when firmware reserves it, in e820 or a PNP0C02 _CRS.
    sb.push(
      device('ECAM', [
        name('_HID', dwordConst(eisaId('PNP0C02'))),
        name('_UID', integer(1)),
        name('_CRS', resourceTemplate([memory32Fixed(PCIE_ECAM, PCIE_ECAM_SIZE)])),
      ]),
    );
  }
  const s5 = name('_S5_', pkg([integer(S5_SLP_TYP), integer(S5_SLP_TYP), integer(0), integer(0)]));
  const out = new ByteWriter().bytes(scope('\\_SB', sb)).bytes(s5);
  return out.finish();
}

export function buildDsdt(opts: { ecam: boolean }): Uint8Array {
  return sdt('DSDT', 2, buildDsdtAml(opts));
}

export interface AcpiOptions extends MadtOptions {
  /** Publish MCFG and reserve the PCIe ECAM window (only if the machine serves ECAM accesses). */
  ecam: boolean;
}

export interface AcpiPlacement {
  rsdpAddr: number;
  tables: { signature: string; addr: number; length: number }[];
  /** Guest-physical range the tables (not the RSDP) occupy. */
  range: { addr: number; size: number };
}

/** Writes the RSDP at ACPI_RSDP and the tables from ACPI_TABLES; returns where each went. */
export function writeAcpiTables(mem: GuestMemory, opts: AcpiOptions): AcpiPlacement {
  if (!Number.isInteger(opts.cpus) || opts.cpus < 1 || opts.cpus > 254) {
    throw new Error(`ACPI: ${opts.cpus} vCPUs is outside 1..254`);
  }
  const tables: AcpiPlacement['tables'] = [];
  let next = ACPI_TABLES;
  const place = (bytes: Uint8Array, alignment: number): number => {
    const addr = Math.ceil(next / alignment) * alignment;
    if (addr + bytes.length > ACPI_TABLES_END) {
      throw new Error(`ACPI tables overflow their area at ${hex(addr)}`);
    }
    mem.write(addr, bytes);
    tables.push({ signature: String.fromCharCode(...bytes.subarray(0, 4)), addr, length: bytes.length });
    next = addr + bytes.length;
    return addr;
  };
  const facs = place(buildFacs(), 64);
  const dsdt = place(buildDsdt({ ecam: opts.ecam }), 16);
  const fadt = place(buildFadt(dsdt, facs, opts.sciIrq), 16);
  const madt = place(buildMadt(opts), 16);
  const pointed = [fadt, madt];
  if (opts.ecam) pointed.push(place(buildMcfg(), 16));
  place(buildXsdt(pointed), 16);
  const xsdt = tables[tables.length - 1]!.addr;
  mem.write(ACPI_RSDP, buildRsdp(xsdt));
  return { rsdpAddr: ACPI_RSDP, tables, range: { addr: ACPI_TABLES, size: next - ACPI_TABLES } };
}
