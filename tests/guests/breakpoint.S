# int3 and fwait at CPL0. Hosts whose KVM emulates CPL0 code (PVM) cannot run either and exit
# with an emulation failure; Vireo then injects #BP past the int3 and skips the fwait. Either
# way the guest's #BP handler reports vector 3 and the return address it saw, and the guest exits.
.include "guest.inc"
GUEST_HEADER
guest_main:
  lea rdi, [rip + idt + 3 * 16]
  lea rax, [rip + breakpoint_handler]
  mov word ptr [rdi], ax
  mov word ptr [rdi + 2], 0x10
  mov word ptr [rdi + 4], 0x8e00
  shr rax, 16
  mov word ptr [rdi + 6], ax
  shr rax, 16
  mov dword ptr [rdi + 8], eax
  lidt [rip + idt_pointer]
  int3
after_int3:
  fwait
  mov al, 0x9b
  mov dx, PORT_REPORT
  out dx, al
  DEBUG_EXIT 0

breakpoint_handler:
  mov al, 3
  mov dx, PORT_REPORT
  out dx, al
  mov rax, [rsp]                # the return RIP
  lea rcx, [rip + after_int3]
  sub rax, rcx                  # 0 when RIP pointed just past the int3
  out dx, eax
  iretq

  .balign 16
idt:
  .fill 16 * 16, 1, 0
idt_end:
idt_pointer:
  .word idt_end - idt - 1
  .quad idt
