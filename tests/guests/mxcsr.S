# ldmxcsr/stmxcsr at CPL0 with several operand forms. Hosts whose KVM emulates CPL0 code (PVM)
# cannot run them and exit with an emulation failure; Vireo then carries them out itself. Either
# way the guest reports each MXCSR it reads back, a #GP(0) for reserved bits, and exits.
.include "guest.inc"
GUEST_HEADER
guest_main:
  lea rdi, [rip + idt + 13 * 16]
  lea rax, [rip + gp_handler]
  mov word ptr [rdi], ax
  mov word ptr [rdi + 2], 0x10
  mov word ptr [rdi + 4], 0x8e00
  shr rax, 16
  mov word ptr [rdi + 6], ax
  shr rax, 16
  mov dword ptr [rdi + 8], eax
  lidt [rip + idt_pointer]

  mov rax, cr4
  or rax, 0x600                 # OSFXSR | OSXMMEXCPT: SSE state instructions allowed
  mov cr4, rax
  mov rax, cr0
  and rax, ~0xc                 # EM and TS off
  or rax, 0x2                   # MP
  mov cr0, rax
  mov dx, PORT_REPORT
  sub rsp, 64

  # The stock kernel's form: SIB on rsp with a disp8.
  mov dword ptr [rsp + 4], 0x7f80
  ldmxcsr [rsp + 4]
  stmxcsr [rsp + 8]
  mov eax, [rsp + 8]
  out dx, eax

  # RIP-relative.
  ldmxcsr [rip + value_a]
  stmxcsr [rip + out_a]
  mov eax, [rip + out_a]
  out dx, eax

  # REX.X/REX.B, scaled index, disp32.
  lea r8, [rip + buffer]
  mov r9, 3
  mov dword ptr [r8 + r9 * 4 + 0x100], 0x9f80
  ldmxcsr [r8 + r9 * 4 + 0x100]
  stmxcsr [r8 + r9 * 4 + 0x104]
  mov eax, [r8 + r9 * 4 + 0x104]
  out dx, eax

  # An operand straddling the 2 MiB page boundary.
  mov rbx, 0x1ffffe
  mov dword ptr [rbx], 0x3f80
  ldmxcsr [rbx]
  mov dword ptr [rbx], 0
  stmxcsr [rbx]
  mov eax, [rbx]
  out dx, eax

  # Reserved bit 16: #GP(0), MXCSR unchanged.
  mov dword ptr [rsp + 4], 0x11f80
  ldmxcsr [rsp + 4]
after_gp:
  stmxcsr [rsp + 8]
  mov eax, [rsp + 8]
  out dx, eax

  mfence
  sfence
  lfence
  mov eax, 0xf0
  out dx, eax
  DEBUG_EXIT 0

gp_handler:
  mov eax, 13
  out dx, eax
  mov eax, [rsp]                # the error code
  out dx, eax
  add rsp, 8
  lea rax, [rip + after_gp]
  mov [rsp], rax
  iretq

  .balign 4
value_a:
  .long 0x1fc0
out_a:
  .long 0
  .balign 16
buffer:
  .fill 0x200, 1, 0
  .balign 16
idt:
  .fill 16 * 16, 1, 0
idt_end:
idt_pointer:
  .word idt_end - idt - 1
  .quad idt
