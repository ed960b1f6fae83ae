/**
 * `lmf bench peak`: this machine's arithmetic ceiling on the chosen kernel path — chains of independent f32 FMAs
 * and of bf16 dot products into f32 on every thread, no memory traffic (native/src/peak_kernels.h). Every other
 * bench line divides its model FLOPs by the same measurement (peak_fraction). AMX tiles are not measured: where
 * oneDNN runs bf16 matmuls on them (Sapphire Rapids and later) a bf16 line has no peak to compare with.
 */
import { native } from '../native.js';
import { onWholeBudget } from '../threads.js';

export interface PeakResult {
  isa: string;
  /** the instruction set oneDNN's matmuls use (avx512_core_amx: bf16 products on AMX tiles, beyond this peak) */
  matmul_isa: string | null;
  threads: number;
  f32_gflops: number;
  /** null when the path has no bf16 dot product (bf16 matmuls then run on widened f32 operands) */
  bf16_gflops: number | null;
}

export function runPeakBench(): PeakResult {
  const { isa, threads, onednnIsa } = native.info();
  const bf16 = native.peakGflops(true);
  return {
    isa,
    matmul_isa: onednnIsa ?? null,
    threads,
    f32_gflops: Math.round(native.peakGflops(false) * 10) / 10,
    bf16_gflops: bf16 > 0 ? Math.round(bf16 * 10) / 10 : null,
  };
}

/**
 * The peak a bench in this precision compares with: bf16 dot products where the path has them, else f32 FMAs, on
 * the process's whole thread budget; null for bf16 when the matmuls run on AMX tiles (a vector peak would be
 * exceeded, not approached).
 */
export function measuredPeak(dtype: 'f32' | 'bf16'): number | null {
  if (dtype === 'bf16' && native.info().onednnIsa === 'avx512_core_amx') return null;
  return onWholeBudget(() => {
    const bf16 = dtype === 'bf16' ? native.peakGflops(true) : 0;
    return bf16 > 0 ? bf16 : native.peakGflops(false);
  });
}
