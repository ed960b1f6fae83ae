{
  "targets": [
    {
      "target_name": "lmf_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/memory.cc",
        "native/src/matmul.cc",
        "native/src/elementwise.cc",
        "native/src/norm_rope.cc",
        "native/src/attention.cc",
        "native/src/cross_entropy.cc",
        "native/src/optim.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions"],
      "cflags_cc": ["-std=c++17", "-O3", "-march=native", "-fopenmp", "-ffp-contract=fast", "-fexceptions", "-Wno-maybe-uninitialized"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldnnl"]
    }
  ]
}
