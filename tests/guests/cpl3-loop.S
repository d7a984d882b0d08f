# The exit benchmark guest: drops to CPL3 with IOPL 3 (where an emulating host such as PVM runs
# guest code natively) and does `out` to PORT_BENCH guest_param times, then writes 0 to
# PORT_DEBUG_EXIT. Interrupts stay off throughout.
.include "guest.inc"
GUEST_HEADER
guest_main:
  lgdt [rip + gdt_pointer]
  mov rax, 0x2b                 # SS: user data, RPL 3
  push rax
  mov rax, 0x200000             # user stack (unused by the loop, but valid)
  push rax
  push 0x3002                   # RFLAGS: IOPL 3, interrupts off
  push 0x33                     # CS: 64-bit user code, RPL 3
  lea rax, [rip + user_loop]
  push rax
  iretq
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

  .balign 8
gdt:
  .quad 0
  .quad 0
  .quad 0x00af9b000000ffff      # 0x10 kernel code, 64-bit
  .quad 0x00cf93000000ffff      # 0x18 kernel data
  .quad 0
  .quad 0x00cff3000000ffff      # 0x28 user data, DPL 3
  .quad 0x00affb000000ffff      # 0x30 user code, 64-bit, DPL 3
gdt_end:
gdt_pointer:
  .word gdt_end - gdt - 1
  .quad gdt
