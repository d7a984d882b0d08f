// The C baseline for bench/exit-roundtrip: the same guest, VM shape and KVM_RUN loop as Vireo,
// with a no-op handler for the benchmark port. Prints the nanoseconds the run loop took, the
// exits, and the nanoseconds spent between KVM_RUN calls.
//   exit-roundtrip-baseline GUEST.bin ITERATIONS
// Mirrors core/src/kvm/test-vm.ts and core/src/x86/long-mode.ts (addresses from layout.ts).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define RAM_SIZE (16u << 20)
#define KERNEL_LOAD 0x100000
#define BOOT_GDT 0x500
#define BOOT_IDT 0x520
#define BOOT_PML4 0x9000
#define BOOT_PDPT 0xa000
#define BOOT_PD 0xb000
#define BOOT_STACK 0x8ff0
#define KVM_TSS_ADDR 0xfffbd000
#define KVM_IDENTITY_MAP_ADDR 0xfffbc000ull
#define PORT_BENCH 0x80
#define PORT_DEBUG_EXIT 0x501

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
  fprintf(stderr, "exit-roundtrip-baseline: %s: %s\n", what, strerror(errno));
  exit(1);
}

static int ioctl_or_die(int fd, unsigned long req, void *arg, const char *what) {
  int rc = ioctl(fd, req, arg);
  if (rc < 0) die(what);
  return rc;
}

static void flat(struct kvm_segment *s, uint16_t sel, uint8_t type, int code64) {
  memset(s, 0, sizeof *s);
  s->base = 0;
  s->limit = 0xffffffff;
  s->selector = sel;
  s->type = type;
  s->present = 1;
  s->s = 1;
  s->g = 1;
  s->l = code64;
  s->db = !code64;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: %s GUEST.bin ITERATIONS\n", argv[0]);
    return 2;
  }
  uint64_t iterations = strtoull(argv[2], NULL, 0);
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm < 0) die("open /dev/kvm");
  int vm = ioctl_or_die(kvm, KVM_CREATE_VM, 0, "KVM_CREATE_VM");
  ioctl_or_die(vm, KVM_SET_TSS_ADDR, (void *)(uintptr_t)KVM_TSS_ADDR, "KVM_SET_TSS_ADDR");
  uint64_t identity = KVM_IDENTITY_MAP_ADDR;
  ioctl_or_die(vm, KVM_SET_IDENTITY_MAP_ADDR, &identity, "KVM_SET_IDENTITY_MAP_ADDR");
  ioctl_or_die(vm, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
  struct kvm_pit_config pit = {0};
  ioctl_or_die(vm, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");

  uint8_t *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (ram == MAP_FAILED) die("mmap");
  struct kvm_userspace_memory_region region = {
      .slot = 0, .guest_phys_addr = 0, .memory_size = RAM_SIZE, .userspace_addr = (uintptr_t)ram};
  ioctl_or_die(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");

  FILE *f = fopen(argv[1], "rb");
  if (!f) die(argv[1]);
  size_t n = fread(ram + KERNEL_LOAD, 1, RAM_SIZE - KERNEL_LOAD, f);
  fclose(f);
  if (n < 16) die("guest too small");
  memcpy(ram + KERNEL_LOAD + 8, &iterations, 8);

  uint64_t *gdt = (uint64_t *)(ram + BOOT_GDT);
  gdt[0] = 0;
  gdt[1] = 0;
  gdt[2] = 0x00af9b000000ffffull;
  gdt[3] = 0x00cf93000000ffffull;
  *(uint64_t *)(ram + BOOT_IDT) = 0;
  uint64_t *pml4 = (uint64_t *)(ram + BOOT_PML4);
  uint64_t *pdpt = (uint64_t *)(ram + BOOT_PDPT);
  pml4[0] = BOOT_PDPT | 7;
  for (uint64_t g = 0; g < 4; g++) {
    uint64_t *pd = (uint64_t *)(ram + BOOT_PD + g * 0x1000);
    pdpt[g] = (BOOT_PD + g * 0x1000) | 7;
    for (uint64_t i = 0; i < 512; i++) pd[i] = ((g << 30) + (i << 21)) | 0x87;
  }

  int vcpu = ioctl_or_die(vm, KVM_CREATE_VCPU, 0, "KVM_CREATE_VCPU");
  int run_size = ioctl_or_die(kvm, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
  struct kvm_run *run = mmap(NULL, (size_t)run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
  if (run == MAP_FAILED) die("mmap kvm_run");

  int nent = 256;
  struct kvm_cpuid2 *cpuid = calloc(1, sizeof *cpuid + nent * sizeof(struct kvm_cpuid_entry2));
  cpuid->nent = nent;
  ioctl_or_die(kvm, KVM_GET_SUPPORTED_CPUID, cpuid, "KVM_GET_SUPPORTED_CPUID");
  ioctl_or_die(vcpu, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");

  struct kvm_sregs sregs;
  ioctl_or_die(vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
  flat(&sregs.cs, 0x10, 0xb, 1);
  flat(&sregs.ds, 0x18, 0x3, 0);
  sregs.es = sregs.fs = sregs.gs = sregs.ss = sregs.ds;
  sregs.gdt.base = BOOT_GDT;
  sregs.gdt.limit = 31;
  sregs.idt.base = BOOT_IDT;
  sregs.idt.limit = 7;
  sregs.cr0 = 0x80000031;
  sregs.cr3 = BOOT_PML4;
  sregs.cr4 = 0x20;
  sregs.efer = 0x500;
  ioctl_or_die(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");
  struct kvm_regs regs = {.rip = KERNEL_LOAD, .rsp = BOOT_STACK, .rflags = 2};
  ioctl_or_die(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");

  struct timespec t0, t1;
  clock_gettime(CLOCK_MONOTONIC, &t0);
  uint64_t exits = 0;
  // Same accounting as the addon's runStats: time between KVM_RUN calls.
  uint64_t user_ns = 0, last_return = 0;
  volatile uint8_t sink = 0;
  for (;;) {
    uint64_t entered = now_ns();
    if (last_return) user_ns += entered - last_return;
    int rc = ioctl(vcpu, KVM_RUN, 0);
    last_return = now_ns();
    if (rc < 0) {
      if (errno == EINTR) continue;
      die("KVM_RUN");
    }
    if (run->exit_reason != KVM_EXIT_IO) {
      fprintf(stderr, "exit-roundtrip-baseline: unexpected exit %u\n", run->exit_reason);
      return 1;
    }
    exits++;
    if (run->io.port == PORT_DEBUG_EXIT) break;
    if (run->io.port == PORT_BENCH) sink = *((uint8_t *)run + run->io.data_offset);
  }
  clock_gettime(CLOCK_MONOTONIC, &t1);
  (void)sink;
  long long ns = (t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec);
  printf("%lld %llu %llu\n", ns, (unsigned long long)exits, (unsigned long long)user_ns);
  return 0;
}
