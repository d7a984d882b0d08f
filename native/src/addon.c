// Vireo's KVM addon: mechanism only. Node-API only, so one binary loads in Node and Electron
// (and in worker threads: NAPI_MODULE_INIT makes it context-aware).
#include <node_api.h>

#include "io.h"
#include "net.h"
#include "uring.h"
#include "vcpu.h"

NAPI_MODULE_INIT() {
  kvm_exports(env, exports);
  vcpu_exports(env, exports);
  io_exports(env, exports);
  net_exports(env, exports);
  uring_exports(env, exports);
  return exports;
}
