# The start-up benchmark's guest: an ELF with a PVH entry that both Vireo and QEMU boot. Its
# first instruction writes 'V' to COM1 (so the host sees when the guest started), then it writes
# SLP_TYP=5|SLP_EN to the ACPI PM1a control port 0x604: Vireo powers off there, and QEMU has an
# isa-debug-exit device at that port. With HALT_FOREVER it stays halted instead (memory figure).
  .section .note.Xen, "a"
  .balign 4
  .long 4, 4, 18                 # name size, descriptor size, XEN_ELFNOTE_PHYS32_ENTRY
  .asciz "Xen"
  .long pvh_entry

  .text
  .code32
  .globl pvh_entry
pvh_entry:
  mov $0x3f8, %dx
  mov $'V', %al
  out %al, %dx
.ifndef HALT_FOREVER
  mov $0x604, %dx
  mov $0x3400, %ax
  out %ax, %dx
.endif
1:
  cli
  hlt
  jmp 1b
