// vCPUs: creation with its mmap'd kvm_run, the blocking KVM_RUN call and kicking a vCPU out of it.
//
// kvm_run stays private to this file: Electron's V8 memory cage forbids external ArrayBuffers,
// so run() copies each exit into a caller-provided (typically SharedArrayBuffer-backed) exit
// buffer and copies the answer to a port/MMIO read back before the next KVM_RUN.
//
// vCPUs are named by their fd, a process-wide number, so a worker thread that loaded its own
// instance of this addon can run a vCPU created on the main thread.
#define _GNU_SOURCE
#include "vcpu.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

// Exit buffer layout, mirrored in core/src/kvm/exit.ts.
enum {
  EXIT_REASON = 0,      // u32 kvm_run.exit_reason (KVM_EXIT_INTR when KVM_RUN returned EINTR)
  EXIT_DIRECTION = 4,   // u32 io.direction (1 = out) or mmio.is_write
  EXIT_SIZE = 8,        // u32 io.size or mmio.len
  EXIT_PORT = 12,       // u32 io.port
  EXIT_COUNT = 16,      // u32 io.count
  EXIT_ADDRESS = 24,    // u64 mmio.phys_addr
  EXIT_UNION = 32,      // raw copy of kvm_run's exit union for every other exit
  EXIT_UNION_SIZE = 224,
  EXIT_DATA = 256,      // io/mmio data: written by the guest, or to be read by the guest
  EXIT_DATA_MAX = 4096,
  EXIT_BUFFER_SIZE = EXIT_DATA + EXIT_DATA_MAX,
};

struct vcpu {
  int fd;
  struct kvm_run *run;
  size_t run_size;
  // Where the answer to the last in/read exit goes (inside kvm_run), and how many bytes.
  uint8_t *pending_dst;
  size_t pending_len;
  // Time the vCPU's thread spent outside KVM_RUN between runs: what the VMM costs per exit.
  uint64_t runs;
  uint64_t user_ns;
  uint64_t last_return_ns;
  pthread_mutex_t lock;  // guards thread/thread_known against kick()
  pthread_t thread;
  bool thread_known;
};

#define MAX_VCPU_FD 65536
static _Atomic(struct vcpu *) vcpus[MAX_VCPU_FD];

static int kick_signal(void) { return SIGRTMIN + 6; }

static void on_kick(int sig) { (void)sig; }

static pthread_once_t kick_once = PTHREAD_ONCE_INIT;
static void install_kick_handler(void) {
  // No SA_RESTART: the signal must make KVM_RUN return EINTR.
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_kick;
  sigemptyset(&sa.sa_mask);
  sigaction(kick_signal(), &sa, NULL);
}

static struct vcpu *lookup(napi_env env, napi_value v, const char *what) {
  int32_t fd;
  if (!arg_i32(env, v, what, &fd)) return NULL;
  struct vcpu *vcpu = (fd >= 0 && fd < MAX_VCPU_FD) ? atomic_load(&vcpus[fd]) : NULL;
  if (!vcpu) throw_errno(env, what, EBADF);
  return vcpu;
}

// createVcpu(vmFd, id): the vCPU fd, with kvm_run mapped.
static napi_value create_vcpu(napi_env env, napi_callback_info info) {
  GET_ARGS(3);
  int32_t vm_fd, kvm_fd;
  uint32_t id;
  if (!arg_i32(env, argv[0], "kvm fd", &kvm_fd) || !arg_i32(env, argv[1], "vm fd", &vm_fd) ||
      !arg_u32(env, argv[2], "vcpu id", &id)) {
    return NULL;
  }
  int mmap_size = ioctl(kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (mmap_size < 0) return throw_errno(env, "KVM_GET_VCPU_MMAP_SIZE", errno);
  int fd = ioctl(vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
  if (fd < 0) return throw_errno(env, "KVM_CREATE_VCPU", errno);
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  if (fd >= MAX_VCPU_FD) {
    close(fd);
    return throw_errno(env, "KVM_CREATE_VCPU", EMFILE);
  }
  void *run = mmap(NULL, (size_t)mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (run == MAP_FAILED) {
    int err = errno;
    close(fd);
    return throw_errno(env, "mmap kvm_run", err);
  }
  struct vcpu *vcpu = calloc(1, sizeof *vcpu);
  if (!vcpu) {
    munmap(run, (size_t)mmap_size);
    close(fd);
    return throw_errno(env, "KVM_CREATE_VCPU", ENOMEM);
  }
  vcpu->fd = fd;
  vcpu->run = run;
  vcpu->run_size = (size_t)mmap_size;
  pthread_mutex_init(&vcpu->lock, NULL);
  atomic_store(&vcpus[fd], vcpu);
  return make_i32(env, fd);
}

// closeVcpu(fd): unmaps kvm_run and closes the fd. EBUSY while another thread still owns the
// vCPU (it must call releaseThread first, as vcpu-worker does when it ends).
static napi_value close_vcpu(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  struct vcpu *vcpu = lookup(env, argv[0], "closeVcpu");
  if (!vcpu) return NULL;
  // A thread still running this vCPU would touch freed memory: refuse until it let go.
  pthread_mutex_lock(&vcpu->lock);
  bool busy = vcpu->thread_known && !pthread_equal(vcpu->thread, pthread_self());
  pthread_mutex_unlock(&vcpu->lock);
  if (busy) return throw_errno(env, "closeVcpu (a thread still runs this vCPU)", EBUSY);
  atomic_store(&vcpus[vcpu->fd], NULL);
  munmap(vcpu->run, vcpu->run_size);
  close(vcpu->fd);
  pthread_mutex_destroy(&vcpu->lock);
  free(vcpu);
  return make_undefined(env);
}

static void note_thread(struct vcpu *vcpu) {
  pthread_t self = pthread_self();
  if (vcpu->thread_known && pthread_equal(vcpu->thread, self)) return;
  // Worker threads may start with signals blocked; the kick must reach this thread.
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kick_signal());
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  pthread_mutex_lock(&vcpu->lock);
  vcpu->thread = self;
  vcpu->thread_known = true;
  pthread_mutex_unlock(&vcpu->lock);
}

static inline uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline void put_u32(uint8_t *buf, size_t off, uint32_t v) { memcpy(buf + off, &v, 4); }
static inline void put_u64(uint8_t *buf, size_t off, uint64_t v) { memcpy(buf + off, &v, 8); }

// run(vcpuFd, exitBuffer): one KVM_RUN. Returns the exit reason (also at offset 0 of the buffer).
// Blocks the calling thread while the guest runs: call it from a vCPU's own thread.
static napi_value run_vcpu(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  struct vcpu *vcpu = lookup(env, argv[0], "KVM_RUN");
  if (!vcpu) return NULL;
  void *data;
  size_t length;
  if (!arg_bytes(env, argv[1], "exit buffer", &data, &length)) return NULL;
  if (length < EXIT_BUFFER_SIZE) return throw_arg(env, "KVM_RUN", "exit buffer too short");
  uint8_t *buf = data;
  struct kvm_run *run = vcpu->run;

  note_thread(vcpu);
  if (vcpu->pending_len) {
    memcpy(vcpu->pending_dst, buf + EXIT_DATA, vcpu->pending_len);
    vcpu->pending_len = 0;
  }

  uint32_t reason;
  uint64_t entered = now_ns();
  if (vcpu->last_return_ns) vcpu->user_ns += entered - vcpu->last_return_ns;
  vcpu->runs++;
  int rc = ioctl(vcpu->fd, KVM_RUN, 0);
  vcpu->last_return_ns = now_ns();
  if (rc < 0) {
    int err = errno;
    if (err != EINTR && err != EAGAIN) return throw_errno(env, "KVM_RUN", err);
    // A kick (or any signal): the caller checks why it was asked to stop.
    __atomic_store_n(&run->immediate_exit, 0, __ATOMIC_SEQ_CST);
    reason = KVM_EXIT_INTR;
    put_u32(buf, EXIT_REASON, reason);
    return make_u32(env, reason);
  }

  reason = run->exit_reason;
  put_u32(buf, EXIT_REASON, reason);
  switch (reason) {
    case KVM_EXIT_IO: {
      size_t bytes = (size_t)run->io.size * run->io.count;
      if (bytes > EXIT_DATA_MAX || run->io.data_offset + bytes > vcpu->run_size) {
        return throw_errno(env, "KVM_RUN io exit data", EOVERFLOW);
      }
      uint8_t *io_data = (uint8_t *)run + run->io.data_offset;
      put_u32(buf, EXIT_DIRECTION, run->io.direction);
      put_u32(buf, EXIT_SIZE, run->io.size);
      put_u32(buf, EXIT_PORT, run->io.port);
      put_u32(buf, EXIT_COUNT, run->io.count);
      if (run->io.direction == KVM_EXIT_IO_OUT) {
        memcpy(buf + EXIT_DATA, io_data, bytes);
      } else {
        // Unanswered reads return all-ones, as on a bus with nothing there.
        memset(buf + EXIT_DATA, 0xff, bytes);
        vcpu->pending_dst = io_data;
        vcpu->pending_len = bytes;
      }
      break;
    }
    case KVM_EXIT_MMIO: {
      uint32_t len = run->mmio.len > 8 ? 8 : run->mmio.len;
      put_u32(buf, EXIT_DIRECTION, run->mmio.is_write);
      put_u32(buf, EXIT_SIZE, len);
      put_u64(buf, EXIT_ADDRESS, run->mmio.phys_addr);
      if (run->mmio.is_write) {
        memcpy(buf + EXIT_DATA, run->mmio.data, len);
      } else {
        memset(buf + EXIT_DATA, 0xff, len);
        vcpu->pending_dst = run->mmio.data;
        vcpu->pending_len = len;
      }
      break;
    }
    default:
      memcpy(buf + EXIT_UNION, &run->hw, EXIT_UNION_SIZE);
      break;
  }
  return make_u32(env, reason);
}

// runStats(vcpuFd): { runs, userNs }: KVM_RUN calls so far, and nanoseconds the running thread
// spent outside KVM_RUN between them (exit handling, the VMM's cost per exit).
static napi_value run_stats(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  struct vcpu *vcpu = lookup(env, argv[0], "runStats");
  if (!vcpu) return NULL;
  napi_value obj;
  napi_create_object(env, &obj);
  napi_set_named_property(env, obj, "runs", make_f64(env, (double)__atomic_load_n(&vcpu->runs, __ATOMIC_RELAXED)));
  napi_set_named_property(env, obj, "userNs", make_f64(env, (double)__atomic_load_n(&vcpu->user_ns, __ATOMIC_RELAXED)));
  return obj;
}

// kick(vcpuFd): makes the vCPU's current or next KVM_RUN return with KVM_EXIT_INTR.
// Callable from any thread.
static napi_value kick(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  struct vcpu *vcpu = lookup(env, argv[0], "kick");
  if (!vcpu) return NULL;
  __atomic_store_n(&vcpu->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
  pthread_mutex_lock(&vcpu->lock);
  if (vcpu->thread_known) pthread_kill(vcpu->thread, kick_signal());
  pthread_mutex_unlock(&vcpu->lock);
  return make_undefined(env);
}

// releaseThread(vcpuFd): the thread that ran this vCPU is about to end; stop signalling it.
static napi_value release_thread(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  struct vcpu *vcpu = lookup(env, argv[0], "releaseThread");
  if (!vcpu) return NULL;
  pthread_mutex_lock(&vcpu->lock);
  vcpu->thread_known = false;
  pthread_mutex_unlock(&vcpu->lock);
  return make_undefined(env);
}

// clearImmediateExit(vcpuFd): drops a kick that arrived while the vCPU was not in KVM_RUN.
static napi_value clear_immediate_exit(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  struct vcpu *vcpu = lookup(env, argv[0], "clearImmediateExit");
  if (!vcpu) return NULL;
  __atomic_store_n(&vcpu->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
  return make_undefined(env);
}

// setThreadTicker(micros): from now on the calling thread gets the kick signal every `micros`
// microseconds (0 stops it), so a KVM_RUN it makes returns EINTR within that time whatever the
// guest does. For a thread that runs a vCPU while it also has other things to look at (the main
// thread running vCPU 0 until its worker is ready, vcpu-set.ts).
static __thread timer_t thread_ticker;
static __thread bool thread_ticker_armed;

static napi_value set_thread_ticker(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  uint32_t micros;
  if (!arg_u32(env, argv[0], "micros", &micros)) return NULL;
  if (thread_ticker_armed) {
    timer_delete(thread_ticker);
    thread_ticker_armed = false;
  }
  if (micros == 0) return make_undefined(env);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, kick_signal());
  pthread_sigmask(SIG_UNBLOCK, &set, NULL);
  struct sigevent event;
  memset(&event, 0, sizeof event);
  event.sigev_notify = SIGEV_THREAD_ID;
  event.sigev_signo = kick_signal();
  event._sigev_un._tid = (pid_t)syscall(SYS_gettid);
  if (timer_create(CLOCK_MONOTONIC, &event, &thread_ticker) < 0) return throw_errno(env, "timer_create", errno);
  thread_ticker_armed = true;
  struct itimerspec spec;
  spec.it_interval.tv_sec = micros / 1000000;
  spec.it_interval.tv_nsec = (long)(micros % 1000000) * 1000;
  spec.it_value = spec.it_interval;
  if (timer_settime(thread_ticker, 0, &spec, NULL) < 0) {
    int err = errno;
    timer_delete(thread_ticker);
    thread_ticker_armed = false;
    return throw_errno(env, "timer_settime", err);
  }
  return make_undefined(env);
}

void vcpu_exports(napi_env env, napi_value exports) {
  pthread_once(&kick_once, install_kick_handler);
  export_fn(env, exports, "createVcpu", create_vcpu);
  export_fn(env, exports, "closeVcpu", close_vcpu);
  export_fn(env, exports, "run", run_vcpu);
  export_fn(env, exports, "kick", kick);
  export_fn(env, exports, "runStats", run_stats);
  export_fn(env, exports, "releaseThread", release_thread);
  export_fn(env, exports, "clearImmediateExit", clear_immediate_exit);
  export_fn(env, exports, "setThreadTicker", set_thread_ticker);
  napi_set_named_property(env, exports, "kickSignal", make_i32(env, kick_signal()));
  napi_set_named_property(env, exports, "exitBufferSize", make_u32(env, EXIT_BUFFER_SIZE));
}
