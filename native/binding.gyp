{
  "targets": [
    {
      "target_name": "vireo_kvm",
      "sources": ["src/addon.c"],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
