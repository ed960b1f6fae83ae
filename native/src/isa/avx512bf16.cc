// The hand-written kernels compiled for the avx512bf16 path (flags in binding.gyp); cpu.cc dispatches to them.
#define LMF_ISA_NS avx512bf16
#include "../attention_kernels.h"
#include "../delta_rule_kernels.h"
#include "../gemv_kernels.h"
#include "../packed_gemm_kernels.h"
#include "../peak_kernels.h"
