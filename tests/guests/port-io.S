# Port I/O exits: byte, word and dword `out`, an `in` answered by the VMM, a string `rep outsb`.
.include "guest.inc"
GUEST_HEADER
guest_main:
  mov dx, PORT_REPORT
  mov al, 'h'
  out dx, al
  mov al, 'i'
  out dx, al
  mov ax, 0x1234
  out dx, ax
  mov eax, 0xdeadbeef
  out dx, eax
  # Echo the VMM's answer plus one, so the test sees the `in` data reach the guest.
  mov dx, PORT_QUERY
  in eax, dx
  inc eax
  mov dx, PORT_REPORT
  out dx, eax
  lea rsi, [rip + message]
  mov ecx, message_end - message
  mov dx, PORT_REPORT_STRING
  rep outsb
  DEBUG_EXIT 0x2a
message:
  .ascii "vireo"
message_end:
