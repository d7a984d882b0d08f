# SMP start-up the way firmware and Linux do it: the bootstrap processor copies a real-mode
# trampoline to 0x3000 and sends INIT then SIPI (vector 3) to all other CPUs through its LAPIC's
# ICR. Each application processor wakes in real mode at 0x3000 and reports 0x100 | its APIC id
# (CPUID leaf 1); the BSP reports its own id first.
.include "guest.inc"
.set TRAMPOLINE, 0x3000
GUEST_HEADER
guest_main:
  mov rdx, LAPIC_BASE + 0xf0    # software-enable the LAPIC
  mov dword ptr [rdx], 0x1ff
  mov rdx, LAPIC_BASE + 0x20
  mov eax, [rdx]
  shr eax, 24
  mov dx, PORT_REPORT
  out dx, eax
  lea rsi, [rip + trampoline]
  mov rdi, TRAMPOLINE
  mov ecx, trampoline_end - trampoline
  rep movsb
  mov rdx, LAPIC_BASE + 0x300   # ICR low; all excluding self
  mov dword ptr [rdx], 0xc4500  # INIT
  mov dword ptr [rdx], 0xc4600 | (TRAMPOLINE >> 12)  # STARTUP
1:
  cli
  hlt
  jmp 1b

trampoline:
  .code16
  cli
  mov eax, 1
  cpuid
  shr ebx, 24
  mov eax, ebx
  or eax, 0x100
  mov dx, PORT_REPORT
  out dx, eax
2:
  hlt
  jmp 2b
  .code64
trampoline_end:
