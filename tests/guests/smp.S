# SMP start-up: every vCPU (the VMM starts them all at this entry) reports the APIC id its own
# LAPIC holds, then halts with interrupts off.
.include "guest.inc"
GUEST_HEADER
guest_main:
  mov rdx, LAPIC_BASE + 0x20
  mov eax, [rdx]
  shr eax, 24
  mov dx, PORT_REPORT
  out dx, eax
1:
  cli
  hlt
  jmp 1b
