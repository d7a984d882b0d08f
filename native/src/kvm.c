// KVM ioctls for Vireo: mechanism only. State structs travel as raw bytes; the TypeScript
// wrapper (core/src/kvm) owns their layouts, so this file stays a thin, checked pass-through.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "util.h"
#include "vcpu.h"

// Every ioctl goes through here so a failure names the ioctl and the errno.
#define IOCTL_OR_THROW(fd, req, arg, name)                  \
  int rc_ = ioctl((fd), (req), (arg));                      \
  if (rc_ < 0) return throw_errno(env, (name), errno);

static napi_value address_of(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  void *data;
  size_t length;
  if (!arg_bytes(env, argv[0], "addressOf", &data, &length)) return NULL;
  return make_f64(env, (double)(uintptr_t)data);
}

// adviseHugePages(bytes): madvise(MADV_HUGEPAGE) over the (2 MiB-aligned) range: transparent huge
// pages for guest RAM where the host leaves them to madvise. False where the kernel refuses.
static napi_value advise_huge_pages(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  void *data;
  size_t length;
  if (!arg_bytes(env, argv[0], "adviseHugePages", &data, &length)) return NULL;
  napi_value result;
  napi_get_boolean(env, madvise(data, length, MADV_HUGEPAGE) == 0, &result);
  return result;
}

static napi_value page_size(napi_env env, napi_callback_info info) {
  return make_i32(env, (int32_t)sysconf(_SC_PAGESIZE));
}

static napi_value open_kvm(napi_env env, napi_callback_info info) {
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/kvm", errno);
  return make_i32(env, fd);
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  if (!arg_i32(env, argv[0], "close fd", &fd)) return NULL;
  if (close(fd) < 0) return throw_errno(env, "close", errno);
  return make_undefined(env);
}

static napi_value api_version(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  if (!arg_i32(env, argv[0], "kvm fd", &fd)) return NULL;
  IOCTL_OR_THROW(fd, KVM_GET_API_VERSION, 0, "KVM_GET_API_VERSION");
  return make_i32(env, rc_);
}

static napi_value check_extension(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  uint32_t cap;
  if (!arg_i32(env, argv[0], "fd", &fd) || !arg_u32(env, argv[1], "capability", &cap)) return NULL;
  IOCTL_OR_THROW(fd, KVM_CHECK_EXTENSION, (unsigned long)cap, "KVM_CHECK_EXTENSION");
  return make_i32(env, rc_);
}

static napi_value vcpu_mmap_size(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  if (!arg_i32(env, argv[0], "kvm fd", &fd)) return NULL;
  IOCTL_OR_THROW(fd, KVM_GET_VCPU_MMAP_SIZE, 0, "KVM_GET_VCPU_MMAP_SIZE");
  return make_i32(env, rc_);
}

// Returns a new ArrayBuffer holding `length` bytes copied from `src`.
static napi_value copy_to_arraybuffer(napi_env env, const void *src, size_t length) {
  void *dst;
  napi_value ab;
  if (napi_create_arraybuffer(env, length, &dst, &ab) != napi_ok) return NULL;
  memcpy(dst, src, length);
  return ab;
}

// getSupportedCpuid(kvmFd): ArrayBuffer holding struct kvm_cpuid2 (nent, padding, entries).
static napi_value get_supported_cpuid(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  if (!arg_i32(env, argv[0], "kvm fd", &fd)) return NULL;
  for (uint32_t nent = 64; nent <= 4096; nent *= 2) {
    size_t size = sizeof(struct kvm_cpuid2) + nent * sizeof(struct kvm_cpuid_entry2);
    struct kvm_cpuid2 *cpuid = calloc(1, size);
    if (!cpuid) return throw_errno(env, "KVM_GET_SUPPORTED_CPUID", ENOMEM);
    cpuid->nent = nent;
    if (ioctl(fd, KVM_GET_SUPPORTED_CPUID, cpuid) < 0) {
      int err = errno;
      free(cpuid);
      if (err == E2BIG) continue;
      return throw_errno(env, "KVM_GET_SUPPORTED_CPUID", err);
    }
    size_t used = sizeof(struct kvm_cpuid2) + cpuid->nent * sizeof(struct kvm_cpuid_entry2);
    napi_value result = copy_to_arraybuffer(env, cpuid, used);
    free(cpuid);
    return result;
  }
  return throw_errno(env, "KVM_GET_SUPPORTED_CPUID", E2BIG);
}

// getMsrIndexList(kvmFd): ArrayBuffer of u32 MSR indices KVM saves and restores.
static napi_value get_msr_index_list(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  if (!arg_i32(env, argv[0], "kvm fd", &fd)) return NULL;
  struct kvm_msr_list probe = {.nmsrs = 0};
  if (ioctl(fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
    return throw_errno(env, "KVM_GET_MSR_INDEX_LIST", errno);
  }
  size_t size = sizeof(struct kvm_msr_list) + probe.nmsrs * sizeof(uint32_t);
  struct kvm_msr_list *list = calloc(1, size);
  if (!list) return throw_errno(env, "KVM_GET_MSR_INDEX_LIST", ENOMEM);
  list->nmsrs = probe.nmsrs;
  if (ioctl(fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
    int err = errno;
    free(list);
    return throw_errno(env, "KVM_GET_MSR_INDEX_LIST", err);
  }
  napi_value result = copy_to_arraybuffer(env, list->indices, list->nmsrs * sizeof(uint32_t));
  free(list);
  return result;
}

static napi_value create_vm(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  uint32_t type = 0;
  if (!arg_i32(env, argv[0], "kvm fd", &fd)) return NULL;
  napi_valuetype t;
  napi_typeof(env, argv[1], &t);
  if (t != napi_undefined && !arg_u32(env, argv[1], "vm type", &type)) return NULL;
  IOCTL_OR_THROW(fd, KVM_CREATE_VM, (unsigned long)type, "KVM_CREATE_VM");
  // KVM hands back an fd without O_CLOEXEC; a child process must not keep the VM alive.
  fcntl(rc_, F_SETFD, FD_CLOEXEC);
  return make_i32(env, rc_);
}

static napi_value set_tss_addr(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  uint32_t addr;
  if (!arg_i32(env, argv[0], "vm fd", &fd) || !arg_u32(env, argv[1], "tss address", &addr)) return NULL;
  IOCTL_OR_THROW(fd, KVM_SET_TSS_ADDR, (unsigned long)addr, "KVM_SET_TSS_ADDR");
  return make_undefined(env);
}

static napi_value set_identity_map_addr(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  uint64_t addr;
  if (!arg_i32(env, argv[0], "vm fd", &fd) || !arg_u64(env, argv[1], "identity map address", &addr)) {
    return NULL;
  }
  IOCTL_OR_THROW(fd, KVM_SET_IDENTITY_MAP_ADDR, &addr, "KVM_SET_IDENTITY_MAP_ADDR");
  return make_undefined(env);
}

// setUserMemoryRegion(vmFd, slot, flags, gpa, bytes | null): registers (or with null, deletes)
// a slot backed by a JS buffer. The buffer's address and length must be page-aligned, and the
// caller must keep the buffer alive while the slot exists.
static napi_value set_user_memory_region(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  int32_t fd;
  uint32_t slot, flags;
  uint64_t gpa;
  if (!arg_i32(env, argv[0], "vm fd", &fd) || !arg_u32(env, argv[1], "slot", &slot) ||
      !arg_u32(env, argv[2], "flags", &flags) || !arg_u64(env, argv[3], "guest physical address", &gpa)) {
    return NULL;
  }
  struct kvm_userspace_memory_region region = {
      .slot = slot, .flags = flags, .guest_phys_addr = gpa, .memory_size = 0, .userspace_addr = 0};
  napi_valuetype t;
  napi_typeof(env, argv[4], &t);
  if (t != napi_null && t != napi_undefined) {
    void *data;
    size_t length;
    if (!arg_bytes(env, argv[4], "guest memory", &data, &length)) return NULL;
    long page = sysconf(_SC_PAGESIZE);
    if (((uintptr_t)data & (page - 1)) != 0 || (length & (page - 1)) != 0 || length == 0) {
      return throw_arg(env, "KVM_SET_USER_MEMORY_REGION", "buffer address and length must be page-aligned");
    }
    region.memory_size = length;
    region.userspace_addr = (uintptr_t)data;
  }
  IOCTL_OR_THROW(fd, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");
  return make_undefined(env);
}

static napi_value create_irqchip(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  if (!arg_i32(env, argv[0], "vm fd", &fd)) return NULL;
  IOCTL_OR_THROW(fd, KVM_CREATE_IRQCHIP, 0, "KVM_CREATE_IRQCHIP");
  return make_undefined(env);
}

// enableCap(fd, cap, arg0): KVM_ENABLE_CAP with one argument (e.g. KVM_CAP_SPLIT_IRQCHIP and the
// number of IOAPIC pins whose routes KVM scans for EOI exits).
static napi_value enable_cap(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int32_t fd;
  uint32_t cap, arg0;
  if (!arg_i32(env, argv[0], "fd", &fd) || !arg_u32(env, argv[1], "capability", &cap) ||
      !arg_u32(env, argv[2], "argument", &arg0))
    return NULL;
  struct kvm_enable_cap request = {.cap = cap, .args = {arg0}};
  IOCTL_OR_THROW(fd, KVM_ENABLE_CAP, &request, "KVM_ENABLE_CAP");
  return make_undefined(env);
}

static napi_value create_pit2(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  uint32_t flags;
  if (!arg_i32(env, argv[0], "vm fd", &fd) || !arg_u32(env, argv[1], "pit flags", &flags)) return NULL;
  struct kvm_pit_config config = {.flags = flags};
  IOCTL_OR_THROW(fd, KVM_CREATE_PIT2, &config, "KVM_CREATE_PIT2");
  return make_undefined(env);
}

static void *close_thread(void *data) {
  close((int)(intptr_t)data);
  return NULL;
}

static bool start_detached(void *(*fn)(void *), void *arg) {
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_attr_setstacksize(&attr, 64 * 1024);
  pthread_t thread;
  int err = pthread_create(&thread, &attr, fn, arg);
  pthread_attr_destroy(&attr);
  errno = err;
  return err == 0;
}

// closeVmInBackground(vmFd): closes the VM's fd on a thread of its own. Destroying a KVM VM can wait
// for SRCU grace periods (~12 ms here, after an I/O bus change or with an in-kernel irqchip); the
// caller (a process about to exit, a VM host about to boot the next VM) need not. Falls back to closing here if no thread can be started.
static napi_value close_vm_in_background(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  if (!arg_i32(env, argv[0], "vm fd", &fd)) return NULL;
  if (fd < 0) return throw_errno(env, "close", EBADF);
  if (!start_detached(close_thread, (void *)(intptr_t)fd)) close(fd);
  return make_undefined(env);
}

static napi_value irq_line(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int32_t fd;
  uint32_t irq, level;
  if (!arg_i32(env, argv[0], "vm fd", &fd) || !arg_u32(env, argv[1], "irq", &irq) ||
      !arg_u32(env, argv[2], "level", &level)) {
    return NULL;
  }
  struct kvm_irq_level line = {.irq = irq, .level = level};
  IOCTL_OR_THROW(fd, KVM_IRQ_LINE, &line, "KVM_IRQ_LINE");
  return make_undefined(env);
}

// ioeventfd(vmFd, eventFd, addr, len, flags, datamatch)
static napi_value ioeventfd(napi_env env, napi_callback_info info) {
  GET_ARGS(6);
  int32_t fd, efd;
  uint64_t addr, datamatch = 0;
  uint32_t len, flags;
  if (!arg_i32(env, argv[0], "vm fd", &fd) || !arg_i32(env, argv[1], "eventfd", &efd) ||
      !arg_u64(env, argv[2], "address", &addr) || !arg_u32(env, argv[3], "length", &len) ||
      !arg_u32(env, argv[4], "flags", &flags)) {
    return NULL;
  }
  napi_valuetype t;
  napi_typeof(env, argv[5], &t);
  if (t != napi_undefined && !arg_u64(env, argv[5], "datamatch", &datamatch)) return NULL;
  struct kvm_ioeventfd req = {.datamatch = datamatch, .addr = addr, .len = len, .fd = efd, .flags = flags};
  IOCTL_OR_THROW(fd, KVM_IOEVENTFD, &req, "KVM_IOEVENTFD");
  return make_undefined(env);
}

// irqfd(vmFd, eventFd, gsi, flags, resampleFd)
static napi_value irqfd(napi_env env, napi_callback_info info) {
  GET_ARGS(5);
  int32_t fd, efd, resample = 0;
  uint32_t gsi, flags;
  if (!arg_i32(env, argv[0], "vm fd", &fd) || !arg_i32(env, argv[1], "eventfd", &efd) ||
      !arg_u32(env, argv[2], "gsi", &gsi) || !arg_u32(env, argv[3], "flags", &flags)) {
    return NULL;
  }
  napi_valuetype t;
  napi_typeof(env, argv[4], &t);
  if (t != napi_undefined && !arg_i32(env, argv[4], "resample fd", &resample)) return NULL;
  struct kvm_irqfd req = {.fd = (uint32_t)efd, .gsi = gsi, .flags = flags, .resamplefd = (uint32_t)resample};
  IOCTL_OR_THROW(fd, KVM_IRQFD, &req, "KVM_IRQFD");
  return make_undefined(env);
}

// setGsiRouting(vmFd, bytes): bytes is a struct kvm_irq_routing with its entries.
static napi_value set_gsi_routing(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  void *data;
  size_t length;
  if (!arg_i32(env, argv[0], "vm fd", &fd) || !arg_bytes(env, argv[1], "routing", &data, &length)) return NULL;
  if (length < sizeof(struct kvm_irq_routing)) return throw_arg(env, "KVM_SET_GSI_ROUTING", "buffer too short");
  struct kvm_irq_routing *routing = data;
  if (sizeof(struct kvm_irq_routing) + (size_t)routing->nr * sizeof(struct kvm_irq_routing_entry) > length) {
    return throw_arg(env, "KVM_SET_GSI_ROUTING", "entry count exceeds the buffer");
  }
  IOCTL_OR_THROW(fd, KVM_SET_GSI_ROUTING, routing, "KVM_SET_GSI_ROUTING");
  return make_undefined(env);
}

// signalMsi(vmFd, addressLo, addressHi, data): >0 delivered, 0 blocked by the guest.
static napi_value signal_msi(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  int32_t fd;
  uint32_t lo, hi, data;
  if (!arg_i32(env, argv[0], "vm fd", &fd) || !arg_u32(env, argv[1], "address lo", &lo) ||
      !arg_u32(env, argv[2], "address hi", &hi) || !arg_u32(env, argv[3], "data", &data)) {
    return NULL;
  }
  struct kvm_msi msi = {.address_lo = lo, .address_hi = hi, .data = data};
  IOCTL_OR_THROW(fd, KVM_SIGNAL_MSI, &msi, "KVM_SIGNAL_MSI");
  return make_i32(env, rc_);
}

// getDirtyLog(vmFd, slot, bitmap): fills one bit per page of the slot and resets the log.
static napi_value get_dirty_log(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int32_t fd;
  uint32_t slot;
  void *data;
  size_t length;
  if (!arg_i32(env, argv[0], "vm fd", &fd) || !arg_u32(env, argv[1], "slot", &slot) ||
      !arg_bytes(env, argv[2], "bitmap", &data, &length)) {
    return NULL;
  }
  if (((uintptr_t)data & 7) != 0) return throw_arg(env, "KVM_GET_DIRTY_LOG", "bitmap must be 8-byte aligned");
  struct kvm_dirty_log log = {.slot = slot};
  log.dirty_bitmap = data;
  IOCTL_OR_THROW(fd, KVM_GET_DIRTY_LOG, &log, "KVM_GET_DIRTY_LOG");
  return make_undefined(env);
}

// State structs moved as raw bytes: which = index into this table (mirrored in TypeScript).
struct state_ioctl {
  const char *get_name;
  unsigned long get;
  const char *set_name;
  unsigned long set;
  size_t size;
};

static const struct state_ioctl vcpu_states[] = {
    {"KVM_GET_REGS", KVM_GET_REGS, "KVM_SET_REGS", KVM_SET_REGS, sizeof(struct kvm_regs)},
    {"KVM_GET_SREGS", KVM_GET_SREGS, "KVM_SET_SREGS", KVM_SET_SREGS, sizeof(struct kvm_sregs)},
    {"KVM_GET_FPU", KVM_GET_FPU, "KVM_SET_FPU", KVM_SET_FPU, sizeof(struct kvm_fpu)},
    {"KVM_GET_LAPIC", KVM_GET_LAPIC, "KVM_SET_LAPIC", KVM_SET_LAPIC, sizeof(struct kvm_lapic_state)},
    {"KVM_GET_VCPU_EVENTS", KVM_GET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS", KVM_SET_VCPU_EVENTS,
     sizeof(struct kvm_vcpu_events)},
    {"KVM_GET_MP_STATE", KVM_GET_MP_STATE, "KVM_SET_MP_STATE", KVM_SET_MP_STATE, sizeof(struct kvm_mp_state)},
    {"KVM_GET_XCRS", KVM_GET_XCRS, "KVM_SET_XCRS", KVM_SET_XCRS, sizeof(struct kvm_xcrs)},
    {"KVM_GET_DEBUGREGS", KVM_GET_DEBUGREGS, "KVM_SET_DEBUGREGS", KVM_SET_DEBUGREGS,
     sizeof(struct kvm_debugregs)},
    {"KVM_GET_XSAVE", KVM_GET_XSAVE, "KVM_SET_XSAVE", KVM_SET_XSAVE, sizeof(struct kvm_xsave)},
};

static const struct state_ioctl vm_states[] = {
    {"KVM_GET_IRQCHIP", KVM_GET_IRQCHIP, "KVM_SET_IRQCHIP", KVM_SET_IRQCHIP, sizeof(struct kvm_irqchip)},
    {"KVM_GET_PIT2", KVM_GET_PIT2, "KVM_SET_PIT2", KVM_SET_PIT2, sizeof(struct kvm_pit_state2)},
    {"KVM_GET_CLOCK", KVM_GET_CLOCK, "KVM_SET_CLOCK", KVM_SET_CLOCK, sizeof(struct kvm_clock_data)},
};

static napi_value state_ioctl(napi_env env, napi_callback_info info, const struct state_ioctl *table,
                              size_t count, bool set) {
  GET_ARGS(3);
  int32_t fd;
  uint32_t which;
  void *data;
  size_t length;
  if (!arg_i32(env, argv[0], "fd", &fd) || !arg_u32(env, argv[1], "state kind", &which) ||
      !arg_bytes(env, argv[2], "state bytes", &data, &length)) {
    return NULL;
  }
  if (which >= count) return throw_arg(env, "state ioctl", "unknown state kind");
  const struct state_ioctl *s = &table[which];
  if (length < s->size) return throw_arg(env, set ? s->set_name : s->get_name, "state buffer too short");
  if (ioctl(fd, set ? s->set : s->get, data) < 0) return throw_errno(env, set ? s->set_name : s->get_name, errno);
  return make_undefined(env);
}

static napi_value vcpu_get_state(napi_env env, napi_callback_info info) {
  return state_ioctl(env, info, vcpu_states, sizeof vcpu_states / sizeof *vcpu_states, false);
}
static napi_value vcpu_set_state(napi_env env, napi_callback_info info) {
  return state_ioctl(env, info, vcpu_states, sizeof vcpu_states / sizeof *vcpu_states, true);
}
static napi_value vm_get_state(napi_env env, napi_callback_info info) {
  return state_ioctl(env, info, vm_states, sizeof vm_states / sizeof *vm_states, false);
}
static napi_value vm_set_state(napi_env env, napi_callback_info info) {
  return state_ioctl(env, info, vm_states, sizeof vm_states / sizeof *vm_states, true);
}

// msrs(vcpuFd, set, bytes): bytes is a struct kvm_msrs with entries; returns how many were done.
static napi_value vcpu_msrs(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int32_t fd;
  bool set;
  void *data;
  size_t length;
  if (!arg_i32(env, argv[0], "vcpu fd", &fd)) return NULL;
  napi_get_value_bool(env, argv[1], &set);
  if (!arg_bytes(env, argv[2], "msrs", &data, &length)) return NULL;
  const char *name = set ? "KVM_SET_MSRS" : "KVM_GET_MSRS";
  if (length < sizeof(struct kvm_msrs)) return throw_arg(env, name, "buffer too short");
  struct kvm_msrs *msrs = data;
  if (sizeof(struct kvm_msrs) + (size_t)msrs->nmsrs * sizeof(struct kvm_msr_entry) > length) {
    return throw_arg(env, name, "entry count exceeds the buffer");
  }
  IOCTL_OR_THROW(fd, set ? KVM_SET_MSRS : KVM_GET_MSRS, msrs, name);
  return make_i32(env, rc_);
}

// setCpuid2(vcpuFd, bytes): bytes is a struct kvm_cpuid2 with entries.
static napi_value set_cpuid2(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  void *data;
  size_t length;
  if (!arg_i32(env, argv[0], "vcpu fd", &fd) || !arg_bytes(env, argv[1], "cpuid", &data, &length)) return NULL;
  if (length < sizeof(struct kvm_cpuid2)) return throw_arg(env, "KVM_SET_CPUID2", "buffer too short");
  struct kvm_cpuid2 *cpuid = data;
  if (sizeof(struct kvm_cpuid2) + (size_t)cpuid->nent * sizeof(struct kvm_cpuid_entry2) > length) {
    return throw_arg(env, "KVM_SET_CPUID2", "entry count exceeds the buffer");
  }
  IOCTL_OR_THROW(fd, KVM_SET_CPUID2, cpuid, "KVM_SET_CPUID2");
  return make_undefined(env);
}

static napi_value event_fd(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  uint32_t initval = 0, flags = 0;
  napi_valuetype t;
  napi_typeof(env, argv[0], &t);
  if (t != napi_undefined && !arg_u32(env, argv[0], "initial value", &initval)) return NULL;
  napi_typeof(env, argv[1], &t);
  if (t != napi_undefined && !arg_u32(env, argv[1], "flags", &flags)) return NULL;
  int fd = eventfd(initval, (int)flags | EFD_CLOEXEC);
  if (fd < 0) return throw_errno(env, "eventfd", errno);
  return make_i32(env, fd);
}

// eventfdRead(fd): the counter as a bigint, or null when a non-blocking eventfd is at zero.
static napi_value eventfd_read_js(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  int32_t fd;
  if (!arg_i32(env, argv[0], "eventfd", &fd)) return NULL;
  uint64_t value;
  ssize_t n;
  do n = read(fd, &value, sizeof value);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (errno == EAGAIN) {
      napi_value null;
      napi_get_null(env, &null);
      return null;
    }
    return throw_errno(env, "eventfd read", errno);
  }
  return make_bigint_u64(env, value);
}

static napi_value eventfd_write_js(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  uint64_t value;
  if (!arg_i32(env, argv[0], "eventfd", &fd) || !arg_u64(env, argv[1], "value", &value)) return NULL;
  ssize_t n;
  do n = write(fd, &value, sizeof value);
  while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, "eventfd write", errno);
  return make_undefined(env);
}

// Struct sizes, so the TypeScript layouts can verify themselves against this kernel's headers.
static napi_value struct_sizes(napi_env env) {
  napi_value obj;
  napi_create_object(env, &obj);
#define SIZE(name, type) napi_set_named_property(env, obj, name, make_u32(env, (uint32_t)sizeof(type)))
  SIZE("regs", struct kvm_regs);
  SIZE("sregs", struct kvm_sregs);
  SIZE("fpu", struct kvm_fpu);
  SIZE("lapic", struct kvm_lapic_state);
  SIZE("vcpuEvents", struct kvm_vcpu_events);
  SIZE("mpState", struct kvm_mp_state);
  SIZE("xcrs", struct kvm_xcrs);
  SIZE("debugregs", struct kvm_debugregs);
  SIZE("irqchip", struct kvm_irqchip);
  SIZE("pit2", struct kvm_pit_state2);
  SIZE("clock", struct kvm_clock_data);
  SIZE("cpuidEntry2", struct kvm_cpuid_entry2);
  SIZE("msrEntry", struct kvm_msr_entry);
  SIZE("irqRoutingEntry", struct kvm_irq_routing_entry);
  SIZE("kvmRun", struct kvm_run);
#undef SIZE
  return obj;
}

void kvm_exports(napi_env env, napi_value exports) {
  export_fn(env, exports, "addressOf", address_of);
  export_fn(env, exports, "adviseHugePages", advise_huge_pages);
  export_fn(env, exports, "pageSize", page_size);
  export_fn(env, exports, "openKvm", open_kvm);
  export_fn(env, exports, "closeFd", close_fd);
  export_fn(env, exports, "apiVersion", api_version);
  export_fn(env, exports, "checkExtension", check_extension);
  export_fn(env, exports, "vcpuMmapSize", vcpu_mmap_size);
  export_fn(env, exports, "getSupportedCpuid", get_supported_cpuid);
  export_fn(env, exports, "getMsrIndexList", get_msr_index_list);
  export_fn(env, exports, "createVm", create_vm);
  export_fn(env, exports, "setTssAddr", set_tss_addr);
  export_fn(env, exports, "setIdentityMapAddr", set_identity_map_addr);
  export_fn(env, exports, "setUserMemoryRegion", set_user_memory_region);
  export_fn(env, exports, "enableCap", enable_cap);
  export_fn(env, exports, "createIrqchip", create_irqchip);
  export_fn(env, exports, "createPit2", create_pit2);
  export_fn(env, exports, "closeVmInBackground", close_vm_in_background);
  export_fn(env, exports, "irqLine", irq_line);
  export_fn(env, exports, "ioeventfd", ioeventfd);
  export_fn(env, exports, "irqfd", irqfd);
  export_fn(env, exports, "setGsiRouting", set_gsi_routing);
  export_fn(env, exports, "signalMsi", signal_msi);
  export_fn(env, exports, "getDirtyLog", get_dirty_log);
  export_fn(env, exports, "vcpuGetState", vcpu_get_state);
  export_fn(env, exports, "vcpuSetState", vcpu_set_state);
  export_fn(env, exports, "vmGetState", vm_get_state);
  export_fn(env, exports, "vmSetState", vm_set_state);
  export_fn(env, exports, "vcpuMsrs", vcpu_msrs);
  export_fn(env, exports, "setCpuid2", set_cpuid2);
  export_fn(env, exports, "eventfd", event_fd);
  export_fn(env, exports, "eventfdRead", eventfd_read_js);
  export_fn(env, exports, "eventfdWrite", eventfd_write_js);
  napi_set_named_property(env, exports, "structSizes", struct_sizes(env));
}
