// Mechanism for network backends: a connected Unix socket pair (one end goes to passt as --fd),
// and tap devices (/dev/net/tun, TUNSETIFF and the vnet-header / offload ioctls). Errors are
// exceptions named after the errno; what to do about them is the caller's business.
#define _GNU_SOURCE
#include "net.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "util.h"

// socketPair() -> [fd, fd]: AF_UNIX stream sockets, close-on-exec (spawn's dup2 clears it).
static napi_value socket_pair(napi_env env, napi_callback_info info) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) < 0) return throw_errno(env, "socketpair", errno);
  napi_value out;
  napi_create_array_with_length(env, 2, &out);
  napi_set_element(env, out, 0, make_i32(env, fds[0]));
  napi_set_element(env, out, 1, make_i32(env, fds[1]));
  return out;
}

// tapOpen(name, flags) -> { fd, name }: opens /dev/net/tun non-blocking and attaches it to the
// interface `name` with TUNSETIFF (which creates it when it does not exist and the caller may).
static napi_value tap_open(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  char name[IFNAMSIZ + 1];
  size_t len = 0;
  if (napi_get_value_string_utf8(env, argv[0], name, sizeof name, &len) != napi_ok) {
    return throw_arg(env, "name", "expected a string");
  }
  if (len >= IFNAMSIZ) return throw_arg(env, "name", "longer than 15 bytes");
  int32_t flags;
  if (!arg_i32(env, argv[1], "flags", &flags)) return NULL;
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/net/tun", errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  memcpy(ifr.ifr_name, name, len);
  ifr.ifr_flags = (short)flags;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    return throw_errno(env, "TUNSETIFF", err);
  }
  napi_value out, actual;
  napi_create_object(env, &out);
  napi_set_named_property(env, out, "fd", make_i32(env, fd));
  napi_create_string_utf8(env, ifr.ifr_name, strnlen(ifr.ifr_name, IFNAMSIZ), &actual);
  napi_set_named_property(env, out, "name", actual);
  return out;
}

// tapSetVnetHeaderSize(fd, bytes): TUNSETVNETHDRSZ.
static napi_value tap_set_vnet_hdr_size(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd, size;
  if (!arg_i32(env, argv[0], "fd", &fd) || !arg_i32(env, argv[1], "size", &size)) return NULL;
  int value = size;
  if (ioctl(fd, TUNSETVNETHDRSZ, &value) < 0) return throw_errno(env, "TUNSETVNETHDRSZ", errno);
  return make_undefined(env);
}

// tapSetOffload(fd, flags): TUNSETOFFLOAD with TUN_F_* bits (what the reader accepts).
static napi_value tap_set_offload(napi_env env, napi_callback_info info) {
  GET_ARGS(2);
  int32_t fd;
  uint32_t flags;
  if (!arg_i32(env, argv[0], "fd", &fd) || !arg_u32(env, argv[1], "flags", &flags)) return NULL;
  if (ioctl(fd, TUNSETOFFLOAD, (unsigned long)flags) < 0) return throw_errno(env, "TUNSETOFFLOAD", errno);
  return make_undefined(env);
}

static void export_i32(napi_env env, napi_value exports, const char *name, int32_t value) {
  napi_set_named_property(env, exports, name, make_i32(env, value));
}

void net_exports(napi_env env, napi_value exports) {
  export_fn(env, exports, "socketPair", socket_pair);
  export_fn(env, exports, "tapOpen", tap_open);
  export_fn(env, exports, "tapSetVnetHeaderSize", tap_set_vnet_hdr_size);
  export_fn(env, exports, "tapSetOffload", tap_set_offload);
  export_i32(env, exports, "IFF_TAP", IFF_TAP);
  export_i32(env, exports, "IFF_NO_PI", IFF_NO_PI);
  export_i32(env, exports, "IFF_VNET_HDR", IFF_VNET_HDR);
  export_i32(env, exports, "TUN_F_CSUM", TUN_F_CSUM);
  export_i32(env, exports, "TUN_F_TSO4", TUN_F_TSO4);
  export_i32(env, exports, "TUN_F_TSO6", TUN_F_TSO6);
  export_i32(env, exports, "TUN_F_TSO_ECN", TUN_F_TSO_ECN);
}
