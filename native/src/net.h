// Network backend mechanism: socket pairs and tap devices.
#ifndef VIREO_NET_H
#define VIREO_NET_H

#include <node_api.h>

void net_exports(napi_env env, napi_value exports);

#endif
