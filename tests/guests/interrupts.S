# Interrupts into the guest, three ways, one stage each: the VMM raises ISA IRQ 5 on the in-kernel
# PIC (vector 0x25), sends an MSI (vector 0x41), and signals an irqfd routed to an MSI (vector 0x42).
# Before each stage the guest writes the stage number to PORT_READY with interrupts off, then
# waits with `sti; hlt`. Each handler reports its vector to PORT_REPORT.
.include "guest.inc"
GUEST_HEADER
guest_main:
  # Software-enable the LAPIC (spurious vector 0xff).
  mov rdx, LAPIC_BASE + 0xf0
  mov dword ptr [rdx], 0x1ff
  lea rdi, [rip + handler_pic]
  mov esi, 0x25
  call set_gate
  lea rdi, [rip + handler_msi_41]
  mov esi, 0x41
  call set_gate
  lea rdi, [rip + handler_msi_42]
  mov esi, 0x42
  call set_gate
  lidt [rip + idt_pointer]
  # 8259 pair: vectors 0x20/0x28, cascade on IRQ 2, 8086 mode; unmask IRQ 5 only.
  mov al, 0x11
  out 0x20, al
  out 0xa0, al
  mov al, 0x20
  out 0x21, al
  mov al, 0x28
  out 0xa1, al
  mov al, 0x04
  out 0x21, al
  mov al, 0x02
  out 0xa1, al
  mov al, 0x01
  out 0x21, al
  out 0xa1, al
  mov al, 0xdf
  out 0x21, al
  mov al, 0xff
  out 0xa1, al
  mov ebx, 1
stage:
  mov eax, ebx
  mov dx, PORT_READY
  out dx, eax
  sti
  hlt
  cli
  inc ebx
  cmp ebx, 4
  jne stage
  DEBUG_EXIT 0

# set_gate(rdi = handler, esi = vector): a 64-bit interrupt gate, CS 0x10, DPL 0.
set_gate:
  lea rcx, [rip + idt]
  shl rsi, 4
  add rcx, rsi
  mov rax, rdi
  mov word ptr [rcx], ax
  mov word ptr [rcx + 2], 0x10
  mov word ptr [rcx + 4], 0x8e00
  shr rax, 16
  mov word ptr [rcx + 6], ax
  shr rax, 16
  mov dword ptr [rcx + 8], eax
  mov dword ptr [rcx + 12], 0
  ret

handler_pic:
  push rax
  push rdx
  mov al, 0x25
  mov dx, PORT_REPORT
  out dx, al
  mov al, 0x20                  # EOI to the master PIC
  out 0x20, al
  pop rdx
  pop rax
  iretq

handler_msi_41:
  push rax
  mov al, 0x41
  jmp msi_common
handler_msi_42:
  push rax
  mov al, 0x42
msi_common:
  push rdx
  mov dx, PORT_REPORT
  out dx, al
  mov rdx, LAPIC_BASE + 0xb0    # LAPIC EOI
  mov dword ptr [rdx], 0
  pop rdx
  pop rax
  iretq

  .balign 16
idt:
  .fill 0x50 * 16, 1, 0
idt_end:
idt_pointer:
  .word idt_end - idt - 1
  .quad idt
