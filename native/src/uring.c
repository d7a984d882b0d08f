// io_uring without liburing (raw syscalls; <linux/io_uring.h> from the kernel headers). One ring
// per device, used only from the thread that created it (the VM host's main thread), so the
// submission side needs no locks; the kernel is the only other party, reached through the ring
// indices with acquire/release ordering. Where the kernel has them (6.1+) the ring is
// SINGLE_ISSUER | DEFER_TASKRUN: completion work then runs inside uringReap's io_uring_enter
// instead of interrupting this thread once per completion. Each request carries a 32-bit tag
// chosen by JS; its iovec array lives until its completion is reaped.
//   uringCreate(entries) -> handle            uringEventFd(handle) -> fd (readable: completions)
//   uringQueue(handle, op, fd, buffers[], position, tag) -> bool (false: no room, submit first)
//   uringSubmit(handle) -> submitted          uringReap(handle, Int32Array out) -> pairs (tag, res)
//   uringClose(handle)
#include "uring.h"

#include <errno.h>
#include <linux/io_uring.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "util.h"

#define OP_READ 0
#define OP_WRITE 1
#define OP_FDATASYNC 2

typedef struct {
  int fd;
  int event_fd;
  unsigned entries;
  // Submission ring.
  void *sq_map;
  size_t sq_map_size;
  unsigned *sq_head, *sq_tail, *sq_mask, *sq_array;
  struct io_uring_sqe *sqes;
  size_t sqes_size;
  unsigned sq_local_tail;  // queued but not yet submitted end at here
  unsigned to_submit;
  // Completion ring.
  void *cq_map;
  size_t cq_map_size;
  unsigned *cq_head, *cq_tail, *cq_mask;
  struct io_uring_cqe *cqes;
  unsigned in_flight;
  int defer_taskrun;  // completions wait for io_uring_enter(GETEVENTS) on this thread
  int closed;
} uring;

typedef struct {
  uint32_t tag;
  int iov_count;
  struct iovec iov[];
} request;

static int sys_setup(unsigned entries, struct io_uring_params *p) {
  return (int)syscall(__NR_io_uring_setup, entries, p);
}
static int sys_enter(int fd, unsigned submit, unsigned min_complete, unsigned flags) {
  return (int)syscall(__NR_io_uring_enter, fd, submit, min_complete, flags, NULL, 0);
}
static int sys_register(int fd, unsigned opcode, void *arg, unsigned n) {
  return (int)syscall(__NR_io_uring_register, fd, opcode, arg, n);
}

static void uring_free(uring *u) {
  if (u->sqes) munmap(u->sqes, u->sqes_size);
  if (u->cq_map && u->cq_map != u->sq_map) munmap(u->cq_map, u->cq_map_size);
  if (u->sq_map) munmap(u->sq_map, u->sq_map_size);
  if (u->event_fd >= 0) close(u->event_fd);
  if (u->fd >= 0) close(u->fd);
  u->sqes = NULL;
  u->sq_map = u->cq_map = NULL;
  u->fd = u->event_fd = -1;
}

static uring *get_uring(napi_env env, napi_value v) {
  uring *u = NULL;
  if (napi_get_value_external(env, v, (void **)&u) != napi_ok || !u) {
    throw_arg(env, "handle", "not an io_uring handle");
    return NULL;
  }
  if (u->closed) {
    throw_errno(env, "io_uring", EBADF);
    return NULL;
  }
  return u;
}

static napi_value uring_create(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  uint32_t entries;
  if (!arg_u32(env, argv[0], "entries", &entries)) return NULL;
  if (entries == 0 || entries > 4096) return throw_arg(env, "entries", "must be 1-4096");
  uring *u = calloc(1, sizeof *u);
  if (!u) return throw_errno(env, "io_uring", ENOMEM);
  u->fd = u->event_fd = -1;
  struct io_uring_params p;
  // Completion work runs only when this thread asks (DEFER_TASKRUN, 6.1+), or at least without
  // an interrupt of this thread per completion (COOP_TASKRUN, 5.19+); older kernels: neither.
  static const unsigned setup_flags[] = {
      IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
      IORING_SETUP_COOP_TASKRUN,
      0,
  };
  for (size_t i = 0; i < sizeof setup_flags / sizeof setup_flags[0]; i++) {
    memset(&p, 0, sizeof p);
    p.flags = setup_flags[i];
    u->fd = sys_setup(entries, &p);
    if (u->fd >= 0 || errno != EINVAL) break;
  }
  u->defer_taskrun = u->fd >= 0 && (p.flags & IORING_SETUP_DEFER_TASKRUN) != 0;
  if (u->fd < 0) {
    int err = errno;
    free(u);
    return throw_errno(env, "io_uring_setup", err);
  }
  u->entries = p.sq_entries;
  u->sq_map_size = p.sq_off.array + p.sq_entries * sizeof(unsigned);
  u->cq_map_size = p.cq_off.cqes + p.cq_entries * sizeof(struct io_uring_cqe);
  int single = (p.features & IORING_FEAT_SINGLE_MMAP) != 0;
  if (single && u->cq_map_size > u->sq_map_size) u->sq_map_size = u->cq_map_size;
  u->sq_map = mmap(NULL, u->sq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                   IORING_OFF_SQ_RING);
  if (u->sq_map == MAP_FAILED) u->sq_map = NULL;
  if (u->sq_map && single) {
    u->cq_map = u->sq_map;
  } else if (u->sq_map) {
    u->cq_map = mmap(NULL, u->cq_map_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                     IORING_OFF_CQ_RING);
    if (u->cq_map == MAP_FAILED) u->cq_map = NULL;
  }
  u->sqes_size = p.sq_entries * sizeof(struct io_uring_sqe);
  u->sqes = mmap(NULL, u->sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, u->fd,
                 IORING_OFF_SQES);
  if (u->sqes == MAP_FAILED) u->sqes = NULL;
  if (!u->sq_map || !u->cq_map || !u->sqes) {
    int err = errno;
    uring_free(u);
    free(u);
    return throw_errno(env, "io_uring mmap", err);
  }
  char *sq = u->sq_map, *cq = u->cq_map;
  u->sq_head = (unsigned *)(sq + p.sq_off.head);
  u->sq_tail = (unsigned *)(sq + p.sq_off.tail);
  u->sq_mask = (unsigned *)(sq + p.sq_off.ring_mask);
  u->sq_array = (unsigned *)(sq + p.sq_off.array);
  u->cq_head = (unsigned *)(cq + p.cq_off.head);
  u->cq_tail = (unsigned *)(cq + p.cq_off.tail);
  u->cq_mask = (unsigned *)(cq + p.cq_off.ring_mask);
  u->cqes = (struct io_uring_cqe *)(cq + p.cq_off.cqes);
  u->sq_local_tail = *u->sq_tail;
  u->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (u->event_fd < 0 || sys_register(u->fd, IORING_REGISTER_EVENTFD, &u->event_fd, 1) < 0) {
    int err = errno;
    uring_free(u);
    free(u);
    return throw_errno(env, "io_uring eventfd", err);
  }
  napi_value handle;
  napi_create_external(env, u, NULL, NULL, &handle);
  return handle;
}

static napi_value uring_event_fd(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  uring *u = get_uring(env, argv[0]);
  if (!u) return NULL;
  return make_i32(env, u->event_fd);
}

static napi_value uring_queue(napi_env env, napi_callback_info info) {
  GET_ARGS(6);
  uring *u = get_uring(env, argv[0]);
  if (!u) return NULL;
  uint32_t op, tag;
  int32_t fd;
  uint64_t position;
  if (!arg_u32(env, argv[1], "op", &op) || !arg_i32(env, argv[2], "fd", &fd) ||
      !arg_u64(env, argv[4], "position", &position) || !arg_u32(env, argv[5], "tag", &tag))
    return NULL;
  if (op > OP_FDATASYNC) return throw_arg(env, "op", "unknown operation");
  uint32_t count = 0;
  bool is_array = false;
  napi_is_array(env, argv[3], &is_array);
  if (!is_array) return throw_arg(env, "buffers", "not an array");
  napi_get_array_length(env, argv[3], &count);
  if (count > 1024) return throw_arg(env, "buffers", "more than 1024 (UIO_MAXIOV) buffers");
  // Room: the kernel consumes up to its head; everything queued since counts too.
  unsigned head = __atomic_load_n(u->sq_head, __ATOMIC_ACQUIRE);
  if (u->sq_local_tail - head >= u->entries || u->in_flight >= 2 * u->entries) {
    napi_value no;
    napi_get_boolean(env, false, &no);
    return no;
  }
  request *r = malloc(sizeof *r + count * sizeof(struct iovec));
  if (!r) return throw_errno(env, "io_uring", ENOMEM);
  r->tag = tag;
  r->iov_count = (int)count;
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    napi_get_element(env, argv[3], i, &element);
    void *data;
    size_t length;
    if (!arg_bytes(env, element, "buffer", &data, &length)) {
      free(r);
      return NULL;
    }
    r->iov[i].iov_base = data;
    r->iov[i].iov_len = length;
  }
  unsigned index = u->sq_local_tail & *u->sq_mask;
  struct io_uring_sqe *sqe = &u->sqes[index];
  memset(sqe, 0, sizeof *sqe);
  sqe->fd = fd;
  sqe->user_data = (uint64_t)(uintptr_t)r;
  if (op == OP_FDATASYNC) {
    sqe->opcode = IORING_OP_FSYNC;
    sqe->fsync_flags = IORING_FSYNC_DATASYNC;
  } else {
    sqe->opcode = op == OP_READ ? IORING_OP_READV : IORING_OP_WRITEV;
    sqe->addr = (uint64_t)(uintptr_t)r->iov;
    sqe->len = count;
    sqe->off = position;
  }
  u->sq_array[index] = index;
  u->sq_local_tail++;
  u->to_submit++;
  u->in_flight++;
  napi_value yes;
  napi_get_boolean(env, true, &yes);
  return yes;
}

static napi_value uring_submit(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  uring *u = get_uring(env, argv[0]);
  if (!u) return NULL;
  if (u->to_submit == 0) return make_u32(env, 0);
  __atomic_store_n(u->sq_tail, u->sq_local_tail, __ATOMIC_RELEASE);
  int n;
  do {
    n = sys_enter(u->fd, u->to_submit, 0, 0);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return throw_errno(env, "io_uring_enter", errno);
  u->to_submit -= (unsigned)n;
  return make_u32(env, (uint32_t)n);
}

static napi_value uring_reap(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  uring *u = get_uring(env, argv[0]);
  if (!u) return NULL;
  void *data;
  size_t length;
  if (!arg_bytes(env, argv[1], "out", &data, &length)) return NULL;
  int32_t *out = data;
  size_t room = length / (2 * sizeof(int32_t));
  uint64_t drained;
  if (read(u->event_fd, &drained, sizeof drained) < 0 && errno != EAGAIN)
    return throw_errno(env, "io_uring eventfd read", errno);
  // DEFER_TASKRUN: completions are posted only now. The eventfd fires when such work appears
  // with none pending, so the work must run here (retried on EINTR) or nothing signals again.
  if (u->defer_taskrun) {
    int r;
    do {
      r = sys_enter(u->fd, 0, 0, IORING_ENTER_GETEVENTS);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return throw_errno(env, "io_uring_enter", errno);
  }
  unsigned head = *u->cq_head;
  unsigned tail = __atomic_load_n(u->cq_tail, __ATOMIC_ACQUIRE);
  size_t n = 0;
  while (head != tail && n < room) {
    struct io_uring_cqe *cqe = &u->cqes[head & *u->cq_mask];
    request *r = (request *)(uintptr_t)cqe->user_data;
    out[2 * n] = (int32_t)r->tag;
    out[2 * n + 1] = cqe->res;
    free(r);
    head++;
    n++;
    u->in_flight--;
  }
  __atomic_store_n(u->cq_head, head, __ATOMIC_RELEASE);
  return make_u32(env, (uint32_t)n);
}

// uringClose(handle): call when nothing is in flight (the kernel may still write to buffers
// otherwise). The handle's small struct stays allocated, so a late call fails cleanly (EBADF).
static napi_value uring_close(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  uring *u = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&u) != napi_ok || !u)
    return throw_arg(env, "handle", "not an io_uring handle");
  if (u->closed) return make_undefined(env);
  u->closed = 1;
  uring_free(u);
  return make_undefined(env);
}

void uring_exports(napi_env env, napi_value exports) {
  export_fn(env, exports, "uringCreate", uring_create);
  export_fn(env, exports, "uringEventFd", uring_event_fd);
  export_fn(env, exports, "uringQueue", uring_queue);
  export_fn(env, exports, "uringSubmit", uring_submit);
  export_fn(env, exports, "uringReap", uring_reap);
  export_fn(env, exports, "uringClose", uring_close);
}
