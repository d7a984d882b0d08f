// Mechanism for device I/O that libuv's fs functions do not offer:
// - watchFd: a callback on the event loop whenever an fd (an ioeventfd's eventfd) is readable,
//   through a uv_poll_t on the calling thread's loop: no thread, no blocking read in the pool.
// - fallocate: fallocate(2) on the libuv thread pool (hole punching and zero ranges for
//   virtio-blk discard and write-zeroes), resolving a promise.
#define _GNU_SOURCE
#include "io.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <uv.h>

#include "util.h"

typedef struct {
  uv_poll_t poll;
  napi_env env;
  napi_ref callback;
  napi_async_context async;
  int stopped;
} fd_watch;

static void watch_fired(uv_poll_t *handle, int status, int events) {
  fd_watch *w = handle->data;
  if (w->stopped) return;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;
  napi_value cb, recv, result, arg;
  napi_get_reference_value(env, w->callback, &cb);
  napi_get_global(env, &recv); // MakeCallback wants an object as `this`
  napi_create_int32(env, status, &arg);
  if (cb != NULL) {
    napi_status s = napi_make_callback(env, w->async, recv, cb, 1, &arg, &result);
    if (s == napi_pending_exception) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_fatal_exception(env, error);
    }
  }
  napi_close_handle_scope(env, scope);
}

// watchFd(fd, callback(status)) -> handle: calls back on this thread's loop while fd is readable.
static napi_value watch_fd(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  if (!arg_i32(env, argv[0], "fd", &fd)) return NULL;
  napi_valuetype type;
  napi_typeof(env, argv[1], &type);
  if (type != napi_function) return throw_arg(env, "callback", "not a function");
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) return throw_errno(env, "uv loop", EINVAL);
  fd_watch *w = calloc(1, sizeof *w);
  if (!w) return throw_errno(env, "watchFd", ENOMEM);
  w->env = env;
  int rc = uv_poll_init(loop, &w->poll, fd);
  if (rc != 0) {
    free(w);
    return throw_errno(env, "uv_poll_init", -rc);
  }
  w->poll.data = w;
  napi_create_reference(env, argv[1], 1, &w->callback);
  napi_value name;
  napi_create_string_utf8(env, "vireo:fd-watch", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &w->async);
  rc = uv_poll_start(&w->poll, UV_READABLE, watch_fired);
  if (rc != 0) {
    napi_delete_reference(env, w->callback);
    napi_async_destroy(env, w->async);
    uv_close((uv_handle_t *)&w->poll, NULL); // w is leaked: uv owns it until the close completes
    return throw_errno(env, "uv_poll_start", -rc);
  }
  napi_value handle;
  napi_create_external(env, w, NULL, NULL, &handle);
  return handle;
}

// unwatchFd(handle): stops the callbacks (call before closing the fd). A second call does nothing.
static napi_value unwatch_fd(napi_env env, napi_callback_info info) {
  GET_ARGS(1);
  fd_watch *w = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&w) != napi_ok || w == NULL) {
    return throw_arg(env, "handle", "not a watchFd handle");
  }
  if (w->stopped) return make_undefined(env);
  w->stopped = 1;
  uv_poll_stop(&w->poll);
  napi_delete_reference(env, w->callback);
  napi_async_destroy(env, w->async);
  w->callback = NULL;
  // The JS handle keeps pointing at w and a second unwatchFd reads w->stopped, so w is never
  // freed: a few dozen bytes per device closed.
  uv_close((uv_handle_t *)&w->poll, NULL);
  return make_undefined(env);
}

// refFd(handle, ref): whether the watch keeps the event loop alive (uv_ref / uv_unref); a
// device that is idle lets the process end.
static napi_value ref_fd(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  fd_watch *w = NULL;
  if (napi_get_value_external(env, argv[0], (void **)&w) != napi_ok || w == NULL) {
    return throw_arg(env, "handle", "not a watchFd handle");
  }
  bool ref = false;
  napi_get_value_bool(env, argv[1], &ref);
  if (!w->stopped) {
    if (ref) uv_ref((uv_handle_t *)&w->poll);
    else uv_unref((uv_handle_t *)&w->poll);
  }
  return make_undefined(env);
}

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  int fd;
  int mode;
  int64_t offset;
  int64_t length;
  int err;
} fallocate_job;

static void fallocate_execute(napi_env env, void *data) {
  fallocate_job *job = data;
  int rc;
  do {
    rc = fallocate(job->fd, job->mode, job->offset, job->length);
  } while (rc < 0 && errno == EINTR);
  job->err = rc < 0 ? errno : 0;
}

static void fallocate_complete(napi_env env, napi_status status, void *data) {
  fallocate_job *job = data;
  if (job->err == 0) {
    napi_resolve_deferred(env, job->deferred, make_undefined(env));
  } else {
    // Build the same errno exception the sync calls throw, then reject with it.
    throw_errno(env, "fallocate", job->err);
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_reject_deferred(env, job->deferred, error);
  }
  napi_delete_async_work(env, job->work);
  free(job);
}

// fallocate(fd, mode, offset, length) -> Promise<void>, run on the libuv pool.
static napi_value fallocate_js(napi_env env, napi_callback_info info) {
  GET_ARGS(4);
  int32_t fd, mode;
  uint64_t offset, length;
  if (!arg_i32(env, argv[0], "fd", &fd) || !arg_i32(env, argv[1], "mode", &mode) ||
      !arg_u64(env, argv[2], "offset", &offset) || !arg_u64(env, argv[3], "length", &length)) {
    return NULL;
  }
  if (offset > INT64_MAX || length > INT64_MAX) return throw_arg(env, "range", "past 2^63");
  fallocate_job *job = calloc(1, sizeof *job);
  if (!job) return throw_errno(env, "fallocate", ENOMEM);
  job->fd = fd;
  job->mode = mode;
  job->offset = (int64_t)offset;
  job->length = (int64_t)length;
  napi_value promise, name;
  napi_create_promise(env, &job->deferred, &promise);
  napi_create_string_utf8(env, "vireo:fallocate", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(env, NULL, name, fallocate_execute, fallocate_complete, job, &job->work);
  napi_queue_async_work(env, job->work);
  return promise;
}

void io_exports(napi_env env, napi_value exports) {
  export_fn(env, exports, "watchFd", watch_fd);
  export_fn(env, exports, "unwatchFd", unwatch_fd);
  export_fn(env, exports, "refFd", ref_fd);
  export_fn(env, exports, "fallocate", fallocate_js);
  napi_value v;
  napi_create_int32(env, FALLOC_FL_KEEP_SIZE, &v);
  napi_set_named_property(env, exports, "FALLOC_FL_KEEP_SIZE", v);
  napi_create_int32(env, FALLOC_FL_PUNCH_HOLE, &v);
  napi_set_named_property(env, exports, "FALLOC_FL_PUNCH_HOLE", v);
  napi_create_int32(env, FALLOC_FL_ZERO_RANGE, &v);
  napi_set_named_property(env, exports, "FALLOC_FL_ZERO_RANGE", v);
}
