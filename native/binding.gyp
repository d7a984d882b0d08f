{
  "targets": [
    {
      "target_name": "vireo_kvm",
      "sources": ["src/addon.c", "src/kvm.c", "src/vcpu.c", "src/util.c", "src/io.c", "src/net.c", "src/uring.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
