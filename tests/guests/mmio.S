# MMIO exits: writes of 4 and 1 bytes and an 8-byte read the VMM answers, into the PCI window;
# then a port write the VMM may have bound to an ioeventfd (no exit when it did).
.include "guest.inc"
GUEST_HEADER
guest_main:
  mov rbx, 0xd0000000
  mov dword ptr [rbx], 0x12345678
  mov byte ptr [rbx + 8], 0xab
  mov rax, [rbx + 16]
  mov rsi, rax
  mov dx, PORT_REPORT
  out dx, eax
  mov rax, rsi
  shr rax, 32
  out dx, eax
  mov dx, PORT_NOTIFY
  mov ax, 7
  out dx, ax
  DEBUG_EXIT 0
