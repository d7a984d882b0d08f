// An io_uring for device models: reads, writes and fdatasync submitted in batches from the event
// loop thread, completions signalled through an eventfd the loop watches.
#ifndef VIREO_URING_H
#define VIREO_URING_H

#include <node_api.h>

void uring_exports(napi_env env, napi_value exports);

#endif
