# Wraps a flat Vireo test guest (tests/guests, bench/guests) so QEMU can boot it: an ELF32 with
# a PVH note (and a multiboot header) whose 32-bit entry builds the same long-mode state
# core/src/x86/long-mode.ts gives the guest (flat GDT at 0x500, identity page tables at 0x9000,
# CS 0x10) and jumps to the guest at 0x100000. bench/lib/guest-image.ts assembles it with the
# guest's bytes (the .incbin below names them).
  .set BOOT_GDT, 0x500
  .set BOOT_PML4, 0x9000
  .set BOOT_PDPT, 0xa000
  .set BOOT_PD, 0xb000
  .set BOOT_STACK, 0x8ff0

  .section .note.Xen, "a"
  .balign 4
  .long 4                        # name size
  .long 4                        # descriptor size
  .long 18                       # XEN_ELFNOTE_PHYS32_ENTRY
  .asciz "Xen"
  .long pvh_entry

  .section .guest, "awx"
  .incbin GUEST_PATH

  .section .text32, "ax"
  .code32
  .balign 4
multiboot_header:
  .long 0x1badb002
  .long 0
  .long -0x1badb002
  .globl pvh_entry
pvh_entry:
  cli
  # GDT: null, null, 64-bit code (0x10), data (0x18)
  movl $0, BOOT_GDT
  movl $0, BOOT_GDT + 4
  movl $0, BOOT_GDT + 8
  movl $0, BOOT_GDT + 12
  movl $0x0000ffff, BOOT_GDT + 16
  movl $0x00af9b00, BOOT_GDT + 20
  movl $0x0000ffff, BOOT_GDT + 24
  movl $0x00cf9300, BOOT_GDT + 28
  lgdt gdt_pointer
  # Page tables: PML4 -> PDPT -> four page directories of 2 MiB pages (user, writable, present).
  mov $BOOT_PML4, %edi
  xor %eax, %eax
  mov $(3 * 1024 + 4 * 1024), %ecx
  rep stosl
  movl $(BOOT_PDPT | 7), BOOT_PML4
  xor %esi, %esi                 # directory number
1:
  mov %esi, %eax
  shl $12, %eax
  add $BOOT_PD, %eax
  or $7, %eax
  movl %eax, BOOT_PDPT(, %esi, 8)
  xor %ecx, %ecx                 # entry number
2:
  mov %esi, %eax
  shl $9, %eax
  add %ecx, %eax                 # 2 MiB page index
  mov %eax, %edx
  shl $21, %eax
  shr $11, %edx                  # high 32 bits of page index << 21
  or $0x87, %eax
  mov %esi, %edi
  shl $12, %edi
  add $BOOT_PD, %edi
  mov %eax, (%edi, %ecx, 8)
  mov %edx, 4(%edi, %ecx, 8)
  inc %ecx
  cmp $512, %ecx
  jne 2b
  inc %esi
  cmp $4, %esi
  jne 1b
  mov $BOOT_PML4, %eax
  mov %eax, %cr3
  mov %cr4, %eax
  or $0x20, %eax                 # PAE
  mov %eax, %cr4
  mov $0xc0000080, %ecx          # EFER
  rdmsr
  or $0x100, %eax                # LME
  wrmsr
  mov %cr0, %eax
  or $0x80000031, %eax           # PG | NE | ET | PE
  mov %eax, %cr0
  mov $0x18, %ax
  mov %ax, %ds
  mov %ax, %es
  mov %ax, %ss
  mov $BOOT_STACK, %esp
  ljmp $0x10, $0x100000

  .balign 8
gdt_pointer:
  .word 31
  .long BOOT_GDT
