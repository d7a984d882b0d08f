# The exit benchmark guest: drops to CPL3 (where an emulating host such as PVM runs guest code
# natively) with a real TSS whose I/O bitmap grants the ports (IOPL stays 0), does `out` to
# PORT_BENCH guest_param times, then writes 0 to PORT_DEBUG_EXIT. Interrupts stay off throughout.
.include "guest.inc"
GUEST_HEADER
guest_main:
  ENTER_CPL3 user_loop, user_stack_top
user_loop:
  mov rcx, [rip + guest_param]
  mov dx, PORT_BENCH
  test rcx, rcx
  jz 2f
1:
  out dx, al
  dec rcx
  jnz 1b
2:
  xor eax, eax
  mov dx, PORT_DEBUG_EXIT
  out dx, al
3:
  pause
  jmp 3b

CPL3_TABLES
  .data
  .balign 16
  .fill 256, 1, 0               # user stack (unused by the loop, but valid)
user_stack_top:
