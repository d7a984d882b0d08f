// Node-API helpers: errno exceptions that name the failed call and the errno, argument checks.
#define _GNU_SOURCE
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const char *errno_name(int err) {
  const char *name = strerrorname_np(err);
  return name ? name : "EUNKNOWN";
}

static napi_value throw_with_code(napi_env env, const char *code, const char *msg, int err) {
  napi_value code_v, msg_v, error;
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &code_v);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
  napi_create_error(env, code_v, msg_v, &error);
  if (err != 0) napi_set_named_property(env, error, "errno", make_i32(env, err));
  napi_throw(env, error);
  return NULL;
}

napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s (%s)", what, errno_name(err), strerror(err));
  return throw_with_code(env, errno_name(err), msg, err);
}

napi_value throw_arg(napi_env env, const char *what, const char *why) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, why);
  napi_value code_v, msg_v, error;
  napi_create_string_utf8(env, "EINVAL", NAPI_AUTO_LENGTH, &code_v);
  napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &msg_v);
  napi_create_type_error(env, code_v, msg_v, &error);
  napi_throw(env, error);
  return NULL;
}

bool arg_i32(napi_env env, napi_value v, const char *what, int32_t *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_number) {
    throw_arg(env, what, "expected a number");
    return false;
  }
  napi_get_value_int32(env, v, out);
  return true;
}

bool arg_u32(napi_env env, napi_value v, const char *what, uint32_t *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t != napi_number) {
    throw_arg(env, what, "expected a number");
    return false;
  }
  double d;
  napi_get_value_double(env, v, &d);
  if (!(d >= 0 && d <= 4294967295.0) || d != (double)(uint32_t)d) {
    throw_arg(env, what, "expected an unsigned 32-bit integer");
    return false;
  }
  *out = (uint32_t)d;
  return true;
}

bool arg_u64(napi_env env, napi_value v, const char *what, uint64_t *out) {
  napi_valuetype t;
  napi_typeof(env, v, &t);
  if (t == napi_bigint) {
    bool lossless;
    napi_get_value_bigint_uint64(env, v, out, &lossless);
    return true;
  }
  if (t == napi_number) {
    double d;
    napi_get_value_double(env, v, &d);
    if (!(d >= 0 && d <= 9007199254740991.0) || d != (double)(uint64_t)d) {
      throw_arg(env, what, "expected a non-negative safe integer");
      return false;
    }
    *out = (uint64_t)d;
    return true;
  }
  throw_arg(env, what, "expected a number or bigint");
  return false;
}

bool arg_bytes(napi_env env, napi_value v, const char *what, void **data, size_t *length) {
  bool is_typed = false, is_view = false;
  napi_is_typedarray(env, v, &is_typed);
  if (is_typed) {
    napi_typedarray_type type;
    size_t count, offset;
    napi_value ab;
    void *base;
    if (napi_get_typedarray_info(env, v, &type, &count, &base, &ab, &offset) != napi_ok) {
      throw_arg(env, what, "unreadable typed array");
      return false;
    }
    size_t element = 1;
    switch (type) {
      case napi_int16_array:
      case napi_uint16_array:
        element = 2;
        break;
      case napi_int32_array:
      case napi_uint32_array:
      case napi_float32_array:
        element = 4;
        break;
      case napi_float64_array:
      case napi_bigint64_array:
      case napi_biguint64_array:
        element = 8;
        break;
      default:
        element = 1;
    }
    // napi_get_typedarray_info's data already points at the view's first element.
    *data = base;
    *length = count * element;
    return true;
  }
  napi_is_dataview(env, v, &is_view);
  if (is_view) {
    napi_value ab;
    size_t offset;
    napi_get_dataview_info(env, v, length, data, &ab, &offset);
    return true;
  }
  throw_arg(env, what, "expected a typed array or DataView");
  return false;
}

napi_value make_i32(napi_env env, int32_t v) {
  napi_value r;
  napi_create_int32(env, v, &r);
  return r;
}

napi_value make_u32(napi_env env, uint32_t v) {
  napi_value r;
  napi_create_uint32(env, v, &r);
  return r;
}

napi_value make_f64(napi_env env, double v) {
  napi_value r;
  napi_create_double(env, v, &r);
  return r;
}

napi_value make_bigint_u64(napi_env env, uint64_t v) {
  napi_value r;
  napi_create_bigint_uint64(env, v, &r);
  return r;
}

napi_value make_undefined(napi_env env) {
  napi_value r;
  napi_get_undefined(env, &r);
  return r;
}

void export_fn(napi_env env, napi_value exports, const char *name, napi_callback cb) {
  napi_value fn;
  napi_create_function(env, name, NAPI_AUTO_LENGTH, cb, NULL, &fn);
  napi_set_named_property(env, exports, name, fn);
}
