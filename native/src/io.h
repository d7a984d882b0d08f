// File and fd helpers for device models: fd readiness on the event loop, fallocate off it.
#ifndef VIREO_IO_H
#define VIREO_IO_H

#include <node_api.h>

void io_exports(napi_env env, napi_value exports);

#endif
