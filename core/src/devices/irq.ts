// How devices raise interrupts, without knowing whether KVM, a test or a snapshot is behind them.

/**
 * An interrupt line (an input of the IOAPIC, irqchip/ioapic.ts; in the freestanding test VMs, a
 * GSI of KVM's in-kernel irqchip driven with KVM_IRQ_LINE).
 * Devices hold it high while they have something pending and low otherwise. ISA lines (the UART's
 * IRQ 4, the i8042's IRQ 1, the RTC's IRQ 8) are edge-triggered at the IOAPIC: only a rise is an
 * interrupt, so a device with another event for the guest drops the line before raising it again.
 * The SCI (IRQ 9) and PCI INTx lines are level-triggered.
 */
export interface IrqLine {
  set(level: boolean): void;
}

/** An edge interrupt: an MSI vector or an irqfd. */
export interface EdgeInterrupt {
  trigger(): void;
}
