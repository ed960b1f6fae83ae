{
  "target_defaults": {
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-ffp-contract=fast", "-fexceptions", "-Wno-maybe-uninitialized", "-Wno-psabi"]
  },
  "targets": [
    {
      "target_name": "lmf_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/cpu.cc",
        "native/src/memory.cc",
        "native/src/matmul.cc",
        "native/src/elementwise.cc",
        "native/src/norm_rope.cc",
        "native/src/attention.cc",
        "native/src/cross_entropy.cc",
        "native/src/optim.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "cflags_cc": ["-march=x86-64-v3"],
      "dependencies": ["lmf_kernels_avx2", "lmf_kernels_avx512", "lmf_kernels_avx512bf16"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldnnl"]
    },
    {
      "target_name": "lmf_kernels_avx2",
      "type": "static_library",
      "sources": ["native/src/isa/avx2.cc"],
      "cflags_cc": ["-march=x86-64-v3", "-fPIC"]
    },
    {
      "target_name": "lmf_kernels_avx512",
      "type": "static_library",
      "sources": ["native/src/isa/avx512.cc"],
      "cflags_cc": ["-march=x86-64-v4", "-fPIC"]
    },
    {
      "target_name": "lmf_kernels_avx512bf16",
      "type": "static_library",
      "sources": ["native/src/isa/avx512bf16.cc"],
      "cflags_cc": ["-march=x86-64-v4", "-mavx512bf16", "-fPIC"]
    }
  ]
}
