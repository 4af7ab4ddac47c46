{
  # The kernel sources are compiled once per CPU variant into static libraries with their own
  # target flags and namespace; the addon links all of them and picks one at run time
  # (never -march=native, so one build runs on any x86-64 machine). Other architectures get
  # the portable variant only.
  "target_defaults": {
    "cflags_cc": ["-std=gnu++17", "-O3", "-ffp-contract=fast", "-fPIC", "-fno-math-errno"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++1y", "-std=gnu++14"],
    "cflags!": ["-fno-exceptions"],
    "include_dirs": ["src"],
  },
  "targets": [
    {
      "target_name": "kernels_portable",
      "type": "static_library",
      "sources": ["src/kernels.cpp", "src/quant_kernels.cpp"],
      "defines": ["LK_VARIANT=portable"],
    },
    {
      "target_name": "lamina_kernels",
      "sources": ["src/addon.cpp", "src/thread_pool.cpp", "src/cpu_select.cpp", "src/cpu_affinity.cpp", "src/read_ahead_policy.cpp", "src/quant_select.cpp", "src/quant_api.cpp", "src/quant_pack.cpp", "src/attention_runner.cpp", "src/dataplane_worker.cpp", "src/dataplane_client.cpp", "src/dataplane_api.cpp", "src/dataplane_os.cpp", "src/dataplane_tcp.cpp", "src/socket_io.cpp", "src/plane_net.cpp", "src/plane_net_api.cpp"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "dependencies": ["kernels_portable"],
      "conditions": [["target_arch=='x64'", {"dependencies": ["kernels_avx2", "kernels_avx512", "kernels_avx512bf16", "kernels_amxbf16", "quant_avx2vnni", "quant_avx512vnni"]}]],
      "libraries": ["-pthread"],
      "cflags_cc": ["-pthread"],
    },
  ],
  "conditions": [
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "kernels_avx2",
          "type": "static_library",
          "sources": ["src/kernels.cpp", "src/quant_kernels.cpp"],
          "defines": ["LK_VARIANT=avx2"],
          "cflags_cc": ["-mavx2", "-mfma", "-mf16c"],
        },
        {
          "target_name": "kernels_avx512",
          "type": "static_library",
          "sources": ["src/kernels.cpp", "src/quant_kernels.cpp"],
          "defines": ["LK_VARIANT=avx512"],
          "cflags_cc": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl"],
        },
        # The quantized products' integer-dot variants (quant_kernels.h): chosen at run time where
        # the CPU has AVX-VNNI or AVX-512 VNNI.
        {
          "target_name": "quant_avx2vnni",
          "type": "static_library",
          "sources": ["src/quant_kernels.cpp"],
          "defines": ["LK_VARIANT=avx2vnni"],
          "cflags_cc": ["-mavx2", "-mfma", "-mf16c", "-mavxvnni"],
        },
        {
          "target_name": "quant_avx512vnni",
          "type": "static_library",
          "sources": ["src/quant_kernels.cpp"],
          "defines": ["LK_VARIANT=avx512vnni"],
          "cflags_cc": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"],
        },
        {
          # avx512 plus vdpbf16ps for bf16 weights (see src/bf16_dot.h).
          "target_name": "kernels_avx512bf16",
          "type": "static_library",
          "sources": ["src/kernels.cpp"],
          "defines": ["LK_VARIANT=avx512bf16"],
          "cflags_cc": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512bf16"],
        },
        {
          # avx512bf16 plus AMX-BF16 tiles for batched products on bf16 weights (see
          # src/amx_bf16.h); also holds the tiles' software twin, amxbf16-emulated, for tests.
          "target_name": "kernels_amxbf16",
          "type": "static_library",
          "sources": ["src/kernels.cpp"],
          "defines": ["LK_VARIANT=amxbf16"],
          "cflags_cc": ["-mavx2", "-mfma", "-mf16c", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512bf16",
                        "-mamx-tile", "-mamx-bf16"],
        },
      ],
    }],
  ],
}
