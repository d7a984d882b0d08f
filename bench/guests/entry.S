# Entry of the C benchmark guests: entered at 0x100000 in 64-bit long mode at CPL0 with identity
# page tables that let CPL3 reach the first 4 GiB (Vireo's test VM and bench/lib/qemu-pvh-wrapper.S
# both give that). Zeroes .bss, masks the 8259 PICs (firmware such as SeaBIOS leaves the PIT
# ticking into them, and an emulating host runs CPL3 with interrupts on whatever RFLAGS says),
# installs an IDT whose every vector reports and ends the run, then drops to CPL3 through a TSS
# with an I/O bitmap (tests/guests/guest.inc) and calls guest_main(params). Its return value is
# written to PORT_DEBUG_EXIT.
.include "guest.inc"
GUEST_HEADER
  .quad 0, 0, 0, 0, 0, 0, 0     # guest_param is params[0]; params[1..7] follow (see guest.h)

guest_main:
  lea rdi, [rip + __bss_start]
  lea rcx, [rip + _end]
  sub rcx, rdi
  xor eax, eax
  rep stosb
  mov al, 0xff
  out 0x21, al
  out 0xa1, al
  # IDT: every vector -> unexpected_trap (64-bit interrupt gates, CS 0x10).
  lea rax, [rip + unexpected_trap]
  lea rdi, [rip + idt]
  mov ecx, 256
1:
  mov word ptr [rdi], ax
  mov word ptr [rdi + 2], 0x10
  mov word ptr [rdi + 4], 0x8e00
  mov rdx, rax
  shr rdx, 16
  mov word ptr [rdi + 6], dx
  shr rdx, 16
  mov dword ptr [rdi + 8], edx
  mov dword ptr [rdi + 12], 0
  add rdi, 16
  dec ecx
  jnz 1b
  lidt [rip + idt_pointer]
  ENTER_CPL3 user_entry, user_stack_top

user_entry:
  lea rdi, [rip + guest_param]
  call guest_main_c
  mov dx, PORT_DEBUG_EXIT
  out dx, al
2:
  pause
  jmp 2b

# An exception or interrupt nobody expected: say so on the report port and end with status 0x7e.
unexpected_trap:
  lea rsi, [rip + trap_message]
  mov dx, PORT_BENCH_REPORT
3:
  lodsb
  test al, al
  jz 4f
  out dx, al
  jmp 3b
4:
  DEBUG_EXIT 0x7e

CPL3_TABLES
.set PORT_BENCH_REPORT, 0xe9     # bench/guests/guest.h

  .section .rodata
trap_message:
  .asciz "unexpected trap or interrupt\n"

  .data
  .balign 16
idt:
  .fill 256 * 16, 1, 0
idt_end:
idt_pointer:
  .word idt_end - idt - 1
  .quad idt

  .bss
  .balign 16
  .fill 16384, 1, 0
user_stack_top:
