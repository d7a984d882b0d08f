// Small Node-API helpers shared by the addon's source files: argument parsing and errno exceptions.
#ifndef VIREO_UTIL_H
#define VIREO_UTIL_H

#include <node_api.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_ARGS 8

// Throws Error("<what>: <ERRNO_NAME>") with .code = ERRNO_NAME and .errno = err. Returns NULL.
napi_value throw_errno(napi_env env, const char *what, int err);
// Throws a TypeError/RangeError with .code = "EINVAL" for a bad argument. Returns NULL.
napi_value throw_arg(napi_env env, const char *what, const char *why);

// Each getter returns false after throwing when the argument is missing or of the wrong type.
bool arg_i32(napi_env env, napi_value v, const char *what, int32_t *out);
bool arg_u32(napi_env env, napi_value v, const char *what, uint32_t *out);
// Accepts a non-negative safe-integer number or a bigint (taken modulo 2^64).
bool arg_u64(napi_env env, napi_value v, const char *what, uint64_t *out);
// A typed array (any element type) or DataView: its bytes.
bool arg_bytes(napi_env env, napi_value v, const char *what, void **data, size_t *length);

napi_value make_i32(napi_env env, int32_t v);
napi_value make_u32(napi_env env, uint32_t v);
napi_value make_f64(napi_env env, double v);
napi_value make_bigint_u64(napi_env env, uint64_t v);
napi_value make_undefined(napi_env env);

// Reads up to MAX_ARGS arguments; missing ones are undefined.
#define GET_ARGS(n)                                                        \
  size_t argc = (n);                                                       \
  napi_value argv[MAX_ARGS];                                               \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) {   \
    return NULL;                                                           \
  }                                                                        \
  for (size_t i_ = argc; i_ < (size_t)(n) && i_ < MAX_ARGS; i_++) {        \
    napi_get_undefined(env, &argv[i_]);                                    \
  }

void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb);

#endif
