// How devices raise interrupts, without knowing whether KVM, a test or a snapshot is behind them.

/** A level-triggered interrupt line (a GSI of the in-kernel IOAPIC/PIC). */
export interface IrqLine {
  set(level: boolean): void;
}

/** An edge interrupt: an MSI vector or an irqfd. */
export interface EdgeInterrupt {
  trigger(): void;
}
