{
  "targets": [
    {
      "target_name": "lamina_shm",
      "sources": ["src/shm.cc", "src/limits.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"],
      "cflags_cc": ["-O2", "-std=c++17"],
      "libraries": ["-lrt"]
    }
  ]
}
