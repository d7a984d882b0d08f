// vCPU creation, the KVM_RUN call and kicking a vCPU out of it.
#ifndef VIREO_VCPU_H
#define VIREO_VCPU_H

#include <node_api.h>

void kvm_exports(napi_env env, napi_value exports);
void vcpu_exports(napi_env env, napi_value exports);

#endif
