{
  "variables": {
    "with_mpi%": "<!(node -e \"try{require('child_process').execSync('mpicc --showme:version',{stdio:'ignore'});console.log(1)}catch{console.log(0)}\")"
  },
  "target_defaults": {
    "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_CPP_EXCEPTIONS"],
    "cflags!": ["-fno-exceptions"],
    "cflags_cc!": ["-fno-exceptions"],
    "cflags_cc": ["-std=c++17", "-O3", "-fopenmp", "-ffp-contract=fast", "-fno-trapping-math", "-fno-math-errno", "-fexceptions", "-Wno-maybe-uninitialized", "-Wno-psabi", "-fPIC"]
  },
  "targets": [
    {
      "target_name": "lmf_native",
      "sources": [
        "native/src/addon.cc",
        "native/src/cpu.cc",
        "native/src/scratch.cc",
        "native/src/memory.cc",
        "native/src/matmul.cc",
        "native/src/elementwise.cc",
        "native/src/norm_rope.cc",
        "native/src/attention.cc",
        "native/src/decode_stack.cc",
        "native/src/cross_entropy.cc",
        "native/src/optim.cc",
        "native/src/sampling.cc",
        "native/src/quant.cc",
        "native/src/ggml_quants.cc",
        "native/src/linear_attention.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldnnl"],
      "conditions": [
        ["target_arch=='x64'", {
          "cflags_cc": ["-march=x86-64-v3"],
          "dependencies": ["lmf_kernels_avx2", "lmf_kernels_avx512", "lmf_kernels_avx512bf16"]
        }],
        ["target_arch=='arm64'", {
          "cflags_cc": ["-march=armv8-a"],
          "dependencies": ["lmf_kernels_neon", "lmf_kernels_neonbf16"]
        }]
      ]
    },
    {
      "target_name": "lmf_kernels_avx2",
      "type": "static_library",
      "conditions": [["target_arch=='x64'", {"sources": ["native/src/isa/avx2.cc"], "cflags_cc": ["-march=x86-64-v3"]}]]
    },
    {
      "target_name": "lmf_kernels_avx512",
      "type": "static_library",
      "conditions": [["target_arch=='x64'", {"sources": ["native/src/isa/avx512.cc"], "cflags_cc": ["-march=x86-64-v4"]}]]
    },
    {
      "target_name": "lmf_kernels_avx512bf16",
      "type": "static_library",
      "conditions": [["target_arch=='x64'", {"sources": ["native/src/isa/avx512bf16.cc"], "cflags_cc": ["-march=x86-64-v4", "-mavx512bf16"]}]]
    },
    {
      "target_name": "lmf_kernels_neon",
      "type": "static_library",
      "conditions": [["target_arch=='arm64'", {"sources": ["native/src/isa/neon.cc"], "cflags_cc": ["-march=armv8-a"]}]]
    },
    {
      "target_name": "lmf_kernels_neonbf16",
      "type": "static_library",
      "conditions": [["target_arch=='arm64'", {"sources": ["native/src/isa/neonbf16.cc"], "cflags_cc": ["-march=armv8.6-a+bf16"]}]]
    },
    {
      "target_name": "lmf_mpi",
      "conditions": [["with_mpi==1", {
        "sources": ["native/mpi/collectives.cc"],
        "defines": ["OMPI_SKIP_MPICXX"],
        "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
        "cflags_cc": ["<!@(node -e \"try{process.stdout.write(require('child_process').execSync('mpicc --showme:compile'))}catch{}\")"],
        "libraries": ["<!@(node -e \"try{process.stdout.write(require('child_process').execSync('mpicc --showme:link'))}catch{}\")"]
      }], ["with_mpi==0", {"type": "none"}]]
    }
  ]
}
