# Reset: with guest_param 0 the guest asks the i8042 for a CPU reset (0xfe to port 0x64); with 1
# it triple-faults (an empty IDT, then ud2).
.include "guest.inc"
GUEST_HEADER
guest_main:
  mov rax, [rip + guest_param]
  test rax, rax
  jnz triple_fault
  mov al, 0xfe
  out 0x64, al
  DEBUG_EXIT 1
triple_fault:
  lidt [rip + empty_idt]
  ud2
  DEBUG_EXIT 2
empty_idt:
  .word 0
  .quad 0
