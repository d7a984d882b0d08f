// Vireo's KVM addon: mechanism only. Node-API only, so one binary loads in Node and Electron.
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <node_api.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

// apiVersion(): the KVM API version of /dev/kvm (12 on every supported kernel).
static napi_value api_version(napi_env env, napi_callback_info info) {
  int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return throw_errno(env, "open /dev/kvm", errno);
  int version = ioctl(fd, KVM_GET_API_VERSION, 0);
  int err = errno;
  close(fd);
  if (version < 0) return throw_errno(env, "KVM_GET_API_VERSION", err);
  napi_value result;
  napi_create_int32(env, version, &result);
  return result;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "apiVersion", NAPI_AUTO_LENGTH, api_version, NULL, &fn);
  napi_set_named_property(env, exports, "apiVersion", fn);
  return exports;
}
