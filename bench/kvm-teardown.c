// For bench/kvm-teardown: how long a process that used a KVM VM for a few milliseconds takes to
// exit, by what the VM was given. A forked child builds the VM (64 MiB of RAM, one vCPU, then
// the variant's irqchip and ioeventfd), leaves it for LIFE_US, notes the time and calls _exit;
// the parent takes the time from there until waitpid returns: the kernel's teardown of the VM
// (and of the child) on the exit path, which a VMM's caller waits for.
//   kvm-teardown VARIANT RUNS LIFE_US   prints two lines of times in ns, space-separated: the
//   exits, then how long building each VM took (KVM moves some of the waiting there)
// Variants: bare, kernel-irqchip (KVM_CREATE_IRQCHIP; "+pit" adds KVM_CREATE_PIT2), split-irqchip
// (KVM_CAP_SPLIT_IRQCHIP, what Vireo does); "+ioeventfd" adds one ioeventfd.
#define _GNU_SOURCE
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RAM_SIZE (64u << 20)

static long long now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec * 1000000000LL + t.tv_nsec;
}

static void must(int ok, const char *what) {
  if (!ok) {
    perror(what);
    _exit(2);
  }
}

static void build_vm(const char *variant) {
  int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  must(kvm >= 0, "/dev/kvm");
  int vm = ioctl(kvm, KVM_CREATE_VM, 0);
  must(vm >= 0, "KVM_CREATE_VM");
  void *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  must(ram != MAP_FAILED, "mmap");
  struct kvm_userspace_memory_region slot = {
      .slot = 0, .memory_size = RAM_SIZE, .userspace_addr = (unsigned long)ram};
  must(ioctl(vm, KVM_SET_USER_MEMORY_REGION, &slot) == 0, "KVM_SET_USER_MEMORY_REGION");
  if (strncmp(variant, "kernel-irqchip", 14) == 0) {
    must(ioctl(vm, KVM_CREATE_IRQCHIP, 0) == 0, "KVM_CREATE_IRQCHIP");
    if (strstr(variant, "+pit")) {
      struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
      must(ioctl(vm, KVM_CREATE_PIT2, &pit) == 0, "KVM_CREATE_PIT2");
    }
  } else if (strncmp(variant, "split-irqchip", 13) == 0) {
    struct kvm_enable_cap split = {.cap = KVM_CAP_SPLIT_IRQCHIP, .args = {24}};
    must(ioctl(vm, KVM_ENABLE_CAP, &split) == 0, "KVM_CAP_SPLIT_IRQCHIP");
  } else if (strcmp(variant, "bare") != 0) {
    fprintf(stderr, "unknown variant %s\n", variant);
    _exit(2);
  }
  must(ioctl(vm, KVM_CREATE_VCPU, 0) >= 0, "KVM_CREATE_VCPU");
  if (strstr(variant, "+ioeventfd")) {
    struct kvm_ioeventfd kick = {.addr = 0xc0003000, .len = 2, .fd = eventfd(0, EFD_CLOEXEC)};
    must(ioctl(vm, KVM_IOEVENTFD, &kick) == 0, "KVM_IOEVENTFD");
  }
  memset(ram, 1, 2 * 4096);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: kvm-teardown VARIANT RUNS LIFE_US\n");
    return 2;
  }
  int runs = atoi(argv[2]);
  int life_us = atoi(argv[3]);
  long long *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  must(shared != MAP_FAILED, "mmap");
  long long *exit_called = &shared[0];
  long long *setups = &shared[1];
  if (runs < 1 || runs > 500) {
    fprintf(stderr, "RUNS must be 1..500\n");
    return 2;
  }
  for (int i = 0; i < runs; i++) {
    pid_t child = fork();
    must(child >= 0, "fork");
    if (child == 0) {
      long long started = now_ns();
      build_vm(argv[1]);
      setups[i] = now_ns() - started;
      usleep(life_us);
      *exit_called = now_ns();
      _exit(0);
    }
    int status;
    must(waitpid(child, &status, 0) == child, "waitpid");
    long long reaped = now_ns();
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 1;
    printf("%s%lld", i ? " " : "", reaped - *exit_called);
  }
  printf("\n");
  for (int i = 0; i < runs; i++) printf("%s%lld", i ? " " : "", setups[i]);
  printf("\n");
  return 0;
}
