// The guest-physical address map of a Vireo x86-64 machine: one place for every fixed address.

/**
 * vCPUs a machine can have: APIC ids 0..253 (0xFF is the xAPIC broadcast id, and the MP table and
 * MADT name each CPU by its APIC id).
 */
export const MAX_CPUS = 254;

/** Low RAM ends here; 0xA0000..0x100000 is the legacy VGA/BIOS hole (not in the e820 RAM map). */
export const LOW_RAM_END = 0x9_fc00;
/** Extended BIOS data area: the MP floating pointer and table live here. */
export const EBDA_START = 0x9_fc00;
/** BIOS read-only area searched for the ACPI RSDP (0xE0000..0xFFFFF). */
export const BIOS_AREA_START = 0xe_0000;
export const BIOS_AREA_END = 0x10_0000;
/** Where the RSDP is written; the other ACPI tables follow it. */
export const ACPI_RSDP = 0xe_0000;
export const ACPI_TABLES = 0xe_1000;

/** GDT and IDT for 64-bit and 32-bit (PVH) entry. */
export const BOOT_GDT = 0x500;
export const BOOT_IDT = 0x520;
/** Identity page tables for 64-bit entry: PML4, PDPT, then page directories. */
export const BOOT_PML4 = 0x9000;
export const BOOT_PDPT = 0xa000;
export const BOOT_PD = 0xb000;
/** Linux boot_params ("zero page") for the 64-bit boot protocol. */
export const ZERO_PAGE = 0x7000;
/** PVH hvm_start_info and its module list and memory map. */
export const PVH_START_INFO = 0x6000;
/** Initial stack for boot entry (grows down). */
export const BOOT_STACK = 0x8ff0;
/** Kernel command line (up to CMDLINE_MAX bytes). */
export const CMDLINE = 0x2_0000;
export const CMDLINE_MAX = 0x1_0000;
/** Where a protected-mode kernel (bzImage payload) or a flat test guest is loaded. */
export const KERNEL_LOAD = 0x10_0000;

/** Guest RAM above this is placed at 4 GiB: [MMIO_HOLE_START, 4 GiB) is for devices. */
export const MMIO_HOLE_START = 0xc000_0000;
export const MMIO_HOLE_END = 0x1_0000_0000;
/** 32-bit PCI memory window inside the hole (below the PCIe ECAM and the APICs). */
export const PCI_MMIO32_START = 0xc000_0000;
export const PCI_MMIO32_END = 0xe000_0000;
/** PCIe ECAM (MCFG) for bus 0..255. */
export const PCIE_ECAM = 0xe000_0000;
export const PCIE_ECAM_SIZE = 0x1000_0000;
export const IOAPIC_BASE = 0xfec0_0000;
/** The IOAPIC's register window (KVM's and QEMU's size). */
export const IOAPIC_SIZE = 0x100;
/** Inputs of the IOAPIC: GSI 0..23. MSI routes start above them. */
export const IOAPIC_PINS = 24;
/** The IOAPIC's version register (the 82093AA's, as KVM's): no EOI register. */
export const IOAPIC_VERSION = 0x11;
export const LAPIC_BASE = 0xfee0_0000;
/** KVM needs three pages for the TSS and one for the identity map on Intel; placed below the BIOS. */
export const KVM_TSS_ADDR = 0xfffb_d000;
export const KVM_IDENTITY_MAP_ADDR = 0xfffb_c000;

/** ISA interrupt lines used by the legacy devices. */
export const IRQ_COM1 = 4;
export const IRQ_COM2 = 3;
export const IRQ_RTC = 8;
export const IRQ_ACPI_SCI = 9;
export const IRQ_KEYBOARD = 1;

/** PCI slots on bus 0 that devices may use (slot 0 is the host bridge). */
export const PCI_FIRST_SLOT = 1;
export const PCI_LAST_SLOT = 31;
/** The IOAPIC inputs PCI INTx lines are wired to: GSI 16..19. */
export const PCI_INTX_FIRST_GSI = 16;

/**
 * The GSI a slot's INTx pin (0 = INTA# .. 3 = INTD#) drives: the usual swizzle over GSI 16..19,
 * so neighbouring slots' INTA# lines are spread. The DSDT's _PRT describes exactly this.
 */
export function pciIntxGsi(slot: number, pin = 0): number {
  return PCI_INTX_FIRST_GSI + ((slot - 1 + pin) % 4);
}

/** I/O ports. */
export const PORT_COM1 = 0x3f8;
export const PORT_PIC_MASTER = 0x20;
export const PORT_PIC_SLAVE = 0xa0;
/** The PICs' edge/level control registers (ELCR), one byte each. */
export const PORT_PIC_ELCR = 0x4d0;
/** NMI status and control ("system control port B"); bit 5 is PIT channel 2's output on a PC. */
export const PORT_NMI_STATUS = 0x61;
export const PORT_I8042_DATA = 0x60;
export const PORT_I8042_COMMAND = 0x64;
export const PORT_RTC = 0x70;
export const PORT_PCI_CONFIG_ADDRESS = 0xcf8;
export const PORT_PCI_CONFIG_DATA = 0xcfc;
/** ACPI fixed-hardware register blocks (FADT points at them). */
export const PORT_ACPI_PM1A_EVENT = 0x600;
export const PORT_ACPI_PM1A_CONTROL = 0x604;
export const PORT_ACPI_PM_TIMER = 0x608;
/** A debug-exit port for test guests: a write ends the VM with the value as its status. */
export const PORT_DEBUG_EXIT = 0x501;

/** RAM regions for a machine with `size` bytes of memory: below the hole, then above 4 GiB. */
export function ramRegions(size: number): { gpa: number; size: number }[] {
  if (size <= MMIO_HOLE_START) return [{ gpa: 0, size }];
  return [
    { gpa: 0, size: MMIO_HOLE_START },
    { gpa: MMIO_HOLE_END, size: size - MMIO_HOLE_START },
  ];
}

/** BIOS data area words the kernel reads: the EBDA segment and the base memory size in KiB. */
export const BDA_EBDA_SEGMENT = 0x40e;
export const BDA_BASE_MEMORY_KIB = 0x413;
/** The MP configuration table goes here when it does not fit in the EBDA after its floating pointer. */
export const MP_CONFIG_OVERFLOW = 0xf_0000;
/** ACPI tables (from ACPI_TABLES) must end below this address. */
export const ACPI_TABLES_END = 0xf_0000;
/** End of the EBDA (start of the VGA window). */
export const EBDA_END = 0xa_0000;
