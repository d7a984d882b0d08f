# CPL3 -> CPL0 transitions, one per run, chosen by guest_param:
#   0  `syscall` from CPL3, the syscall MSRs written by the guest (wrmsr at CPL0)
#   1  `syscall` from CPL3, the syscall MSRs left as the VMM set them (KVM_SET_MSRS)
#   2  `int 0x80` from CPL3 through a DPL-3 interrupt gate (stack from TSS.RSP0)
#   3  as 0, then `sysretq` back to CPL3
# GDT in Linux's layout, so STAR = 0x0023_0010 << 32 fits both: 0x10 kernel code, 0x18 kernel
# data, 0x23 (unused 32-bit user code), 0x2b user data, 0x33 user code, 0x38 the 64-bit TSS.
# User mode gets IOPL 3 and a TSS I/O bitmap allowing ports 0-0x7ff: an emulating host (PVM) runs
# user code with IOPL 0 whatever iretq loads, so only the bitmap lets it report and exit itself. Reports, 32 bits each:
#   user:     0x0c0de003, CS, RFLAGS
#   syscall:  0x5c5c5c5c, CS, SS, RCX (return RIP), R11 (saved RFLAGS), RSP
#   int 0x80: 0x80808080, CS, SS, RSP, frame CS, frame RIP
#   sysret:   0x5e5e5e5e, CS, SS, RFLAGS
# then DEBUG_EXIT 0x42 from the handler (or from user mode after sysret).
.include "guest.inc"
GUEST_HEADER
syscall_handler_address:        # offset 16: where the VMM finds the handler for LSTAR (mode 1)
  .quad syscall_handler

.set MSR_EFER, 0xc0000080
.set MSR_STAR, 0xc0000081
.set MSR_LSTAR, 0xc0000082
.set MSR_SFMASK, 0xc0000084
.set EFER_SCE, 1

guest_main:
  lgdt [rip + gdt_pointer]
  # 64-bit available TSS descriptor at 0x38 (base is only known after linking: build it here).
  lea rax, [rip + tss]
  lea rdi, [rip + gdt + 0x38]
  mov word ptr [rdi], tss_end - tss - 1
  mov word ptr [rdi + 2], ax
  mov rcx, rax
  shr rcx, 16
  mov byte ptr [rdi + 4], cl
  mov byte ptr [rdi + 5], 0x89
  mov byte ptr [rdi + 6], 0
  mov byte ptr [rdi + 7], ch
  shr rax, 32
  mov dword ptr [rdi + 8], eax
  mov dword ptr [rdi + 12], 0
  lea rax, [rip + kernel_stack_top]
  mov [rip + tss + 4], rax
  mov ax, 0x38
  ltr ax
  # int 0x80: 64-bit interrupt gate, CS 0x10, DPL 3.
  lea rax, [rip + int80_handler]
  lea rcx, [rip + idt + 0x80 * 16]
  mov word ptr [rcx], ax
  mov word ptr [rcx + 2], 0x10
  mov word ptr [rcx + 4], 0xee00
  shr rax, 16
  mov word ptr [rcx + 6], ax
  shr rax, 16
  mov dword ptr [rcx + 8], eax
  mov dword ptr [rcx + 12], 0
  lidt [rip + idt_pointer]

  mov rax, [rip + guest_param]
  cmp rax, 1
  je to_user                    # mode 1: the VMM set the MSRs
  mov ecx, MSR_EFER
  rdmsr
  or eax, EFER_SCE
  wrmsr
  mov ecx, MSR_STAR
  xor eax, eax
  mov edx, 0x00200010
  wrmsr
  mov ecx, MSR_LSTAR
  lea rax, [rip + syscall_handler]
  mov rdx, rax
  shr rdx, 32
  wrmsr
  mov ecx, MSR_SFMASK
  mov eax, 0x47700              # AC, NT, DF, IF, TF
  xor edx, edx
  wrmsr

to_user:
  mov rax, 0x2b
  push rax
  lea rax, [rip + user_stack_top]
  push rax
  push 0x3002                   # IOPL 3, interrupts off
  push 0x33
  lea rax, [rip + user_main]
  push rax
  iretq

user_main:
  mov eax, 0x0c0de003
  mov dx, PORT_REPORT
  out dx, eax
  mov eax, cs
  out dx, eax
  pushfq
  pop rax
  out dx, eax
  mov rax, [rip + guest_param]
  cmp rax, 2
  je 1f
  syscall
  jmp after_sysret
1:
  int 0x80
  # Not reached: the int 0x80 handler exits.
  DEBUG_EXIT 0x7f

after_sysret:
  mov dx, PORT_REPORT
  mov eax, 0x5e5e5e5e
  out dx, eax
  mov eax, cs
  out dx, eax
  mov eax, ss
  out dx, eax
  pushfq
  pop rax
  out dx, eax
  DEBUG_EXIT 0x42

syscall_handler:
  mov r8, rcx
  mov dx, PORT_REPORT
  mov eax, 0x5c5c5c5c
  out dx, eax
  mov eax, cs
  out dx, eax
  mov eax, ss
  out dx, eax
  mov eax, r8d
  out dx, eax
  mov eax, r11d
  out dx, eax
  mov eax, esp
  out dx, eax
  mov rax, [rip + guest_param]
  cmp rax, 3
  jne 1f
  mov rcx, r8
  sysretq
1:
  DEBUG_EXIT 0x42

int80_handler:
  mov dx, PORT_REPORT
  mov eax, 0x80808080
  out dx, eax
  mov eax, cs
  out dx, eax
  mov eax, ss
  out dx, eax
  mov eax, esp
  out dx, eax
  mov eax, [rsp + 8]
  out dx, eax
  mov eax, [rsp]
  out dx, eax
  DEBUG_EXIT 0x42

  .balign 8
gdt:
  .quad 0
  .quad 0
  .quad 0x00af9b000000ffff      # 0x10 kernel code, 64-bit
  .quad 0x00cf93000000ffff      # 0x18 kernel data
  .quad 0x00cffb000000ffff      # 0x20 user code, 32-bit, DPL 3
  .quad 0x00cff3000000ffff      # 0x28 user data, DPL 3
  .quad 0x00affb000000ffff      # 0x30 user code, 64-bit, DPL 3
  .quad 0, 0                    # 0x38 TSS, filled in at run time
gdt_end:
gdt_pointer:
  .word gdt_end - gdt - 1
  .quad gdt

  .balign 16
tss:
  .fill 0x66, 1, 0
  .word io_bitmap - tss
io_bitmap:                      # ports 0-0x7ff allowed at CPL3 (see the note at the top)
  .fill 0x100, 1, 0
  .byte 0xff
tss_end:
idt:
  .fill 0x81 * 16, 1, 0
idt_end:
idt_pointer:
  .word idt_end - idt - 1
  .quad idt

  .balign 4096
kernel_stack:
  .fill 4096, 1, 0
kernel_stack_top:
user_stack:
  .fill 4096, 1, 0
user_stack_top:
