/** The native addon (native/src), loaded once. Kernels take typed arrays over native memory and sizes. */
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { packageRoot } from './version.js';
import path from 'node:path';
import { LmfError } from './errors.js';

type F32 = Float32Array;
type Buf = Float32Array | Uint16Array;
type I32 = Int32Array;
/**
 * One layer of decodeLayers, in slot order: buffers and projections (null where the layer has no such part), two
 * numbers; a projection is [weight, bias, LoRA A, LoRA B, LoRA scale], a quantized weight an array of gemvInt8's or
 * gemv4bit's operands
 */
type DecodeEntry = Buf | Uint8Array | Int8Array | null | number;
export type DecodeLayerBuffers = (DecodeEntry | (DecodeEntry | DecodeEntry[])[])[];

/**
 * dtype codes shared with native/src/kernel_support.h; f32xbf16 (matmul only): an f32 A against a bf16 B
 */
export const NativeDType = { f32: 0, bf16: 1, f32xbf16: 2 } as const;

/** Rows up to which a product against a weight is decoding's kernel (native/src/kernels.h: kGemvMaxRows). */
export const GEMV_MAX_ROWS = 4;

export interface NativeAddon {
  /** isa: our kernels' instruction set; bf16Matmul: oneDNN's own bf16 matmuls, or operands widened to f32 */
  info(): { onednn: string; threads: number; isa: string; onednnIsa?: string; bf16Matmul: 'onednn' | 'widened' };
  threads(n?: number): number;
  /** the kernel path's measured GFLOP/s on every thread: f32 FMAs, or bf16 dot products (0: the path has none) */
  peakGflops(bf16: boolean): number;
  alloc(bytes: number, zero: boolean): ArrayBuffer;
  free(buffer: ArrayBuffer): void;
  memoryStats(resetPeak?: boolean): { liveBytes: number; peakBytes: number; liveBuffers: number };
  matmul(
    a: Buf,
    b: Buf,
    c: F32,
    m: number,
    n: number,
    k: number,
    transA: boolean,
    transB: boolean,
    accumulate: boolean,
    bias: F32 | null,
    dtype: number,
  ): void;
  toBf16(src: F32, dst: Uint16Array, n: number): void;
  /**
   * bitsandbytes' blockwise 4-bit quantisation of n values (f32, or bf16 bits when valuesBf16 is 1) with the NF4
   * table (fp4 0) or FP4's decision tree (fp4 1): codes into packed, one absmax per block
   */
  quantize4bit(
    values: F32 | Uint16Array,
    valuesBf16: 0 | 1,
    n: number,
    fp4: 0 | 1,
    blocksize: number,
    nf4Table: F32,
    packed: Uint8Array,
    absmax: F32,
  ): void;
  /**
   * llama.cpp's blocks of n values for GGUF: type 0 q4_K (144 bytes per 256), 1 q6_K (210 per 256), 2 q5_0 (22 per
   * 32), 3 q5_K (176 per 256), 4 q5_1 (24 per 32)
   */
  quantizeGgml(values: F32, n: number, type: 0 | 1 | 2 | 3 | 4, out: Uint8Array): void;
  /** absmax of 4-bit blocks block0..block0+count from bitsandbytes' double quantization: f32(map[code]·nested) + offset */
  expandAbsmax(
    codes: Uint8Array,
    nestedAbsmax: F32,
    nestedBlocksize: number,
    offset: number,
    map: F32,
    block0: number,
    count: number,
    out: F32,
  ): void;
  /** rows row0.. of a [*, cols] bitsandbytes 4-bit weight, dequantised into out (f32, or bf16 bits when outBf16 is 1) */
  dequantize4bitRows(
    packed: Uint8Array,
    /** the absmax of blocks block0.. (those the rows touch) */
    absmax: F32,
    block0: number,
    table: F32,
    blocksize: number,
    cols: number,
    row0: number,
    rows: number,
    out: F32 | Uint16Array,
    outBf16: 0 | 1,
  ): void;
  /** out[m, n] = x[m, k]·Wᵀ (+ bias) for 1 to 4 rows, W [n, k] in 8-bit codes: (code · scales[row]) / 127 */
  gemvInt8(x: F32, codes: Int8Array, scales: F32, out: F32, m: number, n: number, k: number, bias: F32 | null): void;
  /**
   * out[M, N] = x[M, K]·Wᵀ (+ bias) for 1 to 4 rows, W in 4-bit codes read in place (decoding a QLoRA base); the
   * absmax f32 per block, or null and bitsandbytes' double-quantized absmax (codes …) expanded row by row
   */
  gemv4bit(
    x: F32,
    packed: Uint8Array,
    absmax: F32 | null,
    table: F32,
    blocksize: number,
    out: F32,
    M: number,
    N: number,
    K: number,
    bias: F32 | null,
    codes?: Uint8Array,
    nestedAbsmax?: F32,
    nestedBlocksize?: number,
    offset?: number,
    map?: F32,
  ): void;
  /** rows row0.. of an LLM.int8 weight [*, cols] with its row scales, dequantised into out */
  dequantizeInt8Rows(
    codes: Int8Array,
    scales: F32,
    cols: number,
    row0: number,
    rows: number,
    out: F32 | Uint16Array,
    outBf16: 0 | 1,
  ): void;
  toF32(src: Uint16Array, dst: F32, n: number): void;
  /** how many values are NaN or ±Infinity (dtype: NativeDType) */
  countNonFinite(x: Buf, n: number, dtype: number): number;
  axpby(x: F32, y: F32 | null, out: F32, n: number, a: number, b: number): void;
  fill(x: F32, n: number, value: number): void;
  /** out[0..n) ~ N(0, std²), counter-based on (seed, offset + i), offset even: the same values for any thread count */
  fillNormal(out: F32, n: number, seed: number, offset: number, std: number): void;
  dropout(x: F32, out: F32, n: number, p: number, seed: number): void;
  swigluForward(gate: F32, up: F32, out: F32, n: number): void;
  swigluBackward(gate: F32, up: F32, dout: F32, dgate: F32, dup: F32, n: number): void;
  gegluForward(gate: F32, up: F32, out: F32, n: number): void;
  gegluBackward(gate: F32, up: F32, dout: F32, dgate: F32, dup: F32, n: number): void;
  sigmoidGateForward(gate: F32, up: F32, out: F32, n: number): void;
  sigmoidGateBackward(gate: F32, up: F32, dout: F32, dgate: F32, dup: F32, n: number): void;
  /** Gated DeltaNet's input: silu(causal depthwise conv) over [B*T, c] with weights [c, k]; history: (k-1) earlier rows */
  causalConvSiluForward(
    x: F32,
    w: F32,
    out: F32,
    b: number,
    t: number,
    c: number,
    k: number,
    segments: I32 | null,
    history: F32 | null,
  ): void;
  /** dx written, dw accumulated */
  causalConvSiluBackward(
    x: F32,
    w: F32,
    dout: F32,
    dx: F32,
    dw: F32,
    b: number,
    t: number,
    c: number,
    k: number,
    segments: I32 | null,
  ): void;
  /**
   * the gated delta rule over [B*T, 2*Hk*dk + Hv*dv] convolved q|k|v in 64-token chunks (training, prompts);
   * checkpoints [B, Hv, chunks, dk, dv] for the backward pass; states [B, Hv, dk, dv]
   */
  gatedDeltaForward(
    qkv: F32,
    betaIn: F32,
    decayIn: F32,
    aLog: F32,
    dtBias: F32,
    out: F32,
    b: number,
    t: number,
    hk: number,
    hv: number,
    dk: number,
    dv: number,
    segments: I32 | null,
    checkpoints: F32 | null,
    initState: F32 | null,
    finalState: F32 | null,
  ): void;
  /** the same rule token by token (decoding: few tokens per call) */
  gatedDeltaRecurrent(
    qkv: F32,
    betaIn: F32,
    decayIn: F32,
    aLog: F32,
    dtBias: F32,
    out: F32,
    b: number,
    t: number,
    hk: number,
    hv: number,
    dk: number,
    dv: number,
    segments: I32 | null,
    initState: F32 | null,
    finalState: F32 | null,
  ): void;
  /**
   * gradients of gatedDeltaForward from a zero state: dqkv, dbetaIn, ddecayIn written; daLog, ddtBias accumulated
   * (betaIn, decayIn: in_proj_b and in_proj_a's outputs)
   */
  gatedDeltaBackward(
    qkv: F32,
    betaIn: F32,
    decayIn: F32,
    aLog: F32,
    dtBias: F32,
    dout: F32,
    checkpoints: F32,
    dqkv: F32,
    dbetaIn: F32,
    ddecayIn: F32,
    daLog: F32,
    ddtBias: F32,
    b: number,
    t: number,
    hk: number,
    hv: number,
    dk: number,
    dv: number,
    segments: I32 | null,
  ): void;
  embeddingForward(ids: I32, table: Buf, out: F32, n: number, c: number, dtype: number): void;
  embeddingBackward(ids: I32, dout: F32, dtable: F32, n: number, c: number, paddingIdx: number): void;
  rmsnormForward(x: F32, w: F32, out: F32, rstd: F32 | null, rows: number, c: number, eps: number): void;
  rmsnormBackward(dout: F32, x: F32, w: F32, rstd: F32, dx: F32, dw: F32 | null, rows: number, c: number): void;
  ropeTable(positions: I32, invFreq: F32, cos: F32, sin: F32, tokens: number, half: number): void;
  rope(
    x: F32,
    cos: F32,
    sin: F32,
    tokens: number,
    heads: number,
    headDim: number,
    rotaryDim: number,
    inverse: boolean,
  ): void;
  attentionForward(
    q: F32,
    k: F32,
    v: F32,
    out: F32,
    lse: F32 | null,
    b: number,
    tq: number,
    tk: number,
    h: number,
    kv: number,
    d: number,
    qOffset: number,
    segQ: I32 | null,
    segK: I32 | null,
    scale: number,
    window: number,
    softcap: number,
    bf16: boolean,
  ): void;
  /**
   * The layer stack of one sequence's 1 to GEMV_MAX_ROWS new tokens: h [m, c] through every layer in place, each
   * layer an array in src/models/native-stack.ts's order; the caches hold `cached` rows and room for m more
   */
  decodeLayers(
    h: F32,
    layers: DecodeLayerBuffers[],
    m: number,
    cached: number,
    c: number,
    heads: number,
    kvHeads: number,
    headDim: number,
    intermediate: number,
    eps: number,
    scale: number,
    softcap: number,
    gelu: boolean,
  ): void;
  attentionBackward(
    q: F32,
    k: F32,
    v: F32,
    out: F32,
    dout: F32,
    lse: F32,
    dq: F32,
    dk: F32,
    dv: F32,
    b: number,
    tq: number,
    tk: number,
    h: number,
    kv: number,
    d: number,
    qOffset: number,
    segQ: I32 | null,
    segK: I32 | null,
    scale: number,
    window: number,
    softcap: number,
    bf16: boolean,
  ): void;
  lmHeadCrossEntropy(
    x: F32,
    w: Buf,
    targets: I32,
    weights: F32 | null,
    logp: F32,
    dx: F32 | null,
    dw: F32 | null,
    n: number,
    c: number,
    v: number,
    dtype: number,
    chunk: number,
    softcap: number,
  ): void;
  sumSquares(arrays: F32[]): number;
  /** greedy decoding's token: the first id of the best of v scores */
  argmax(logits: F32, v: number): number;
  /** the next token: repetition penalty on `seen`, temperature, top-k (0: none), top-p, a draw u in [0, 1) */
  sampleToken(
    logits: F32,
    v: number,
    seen: I32 | null,
    penalty: number,
    temperature: number,
    topK: number,
    topP: number,
    u: number,
  ): number;
  adamw(
    params: F32[],
    grads: F32[],
    m: F32[],
    v: F32[],
    lr: Float64Array,
    weightDecay: Float64Array,
    beta1: number,
    beta2: number,
    eps: number,
    step: number,
    gradScale: number,
  ): void;
}

/**
 * The x86-64 build assumes AVX2 and FMA (x86-64-v3): on an older CPU (or a virtual one that hides them) loading
 * it would die of an illegal instruction, so say so first.
 */
function refuseCpuWithoutAvx2(): void {
  if (process.arch !== 'x64' || process.platform !== 'linux' || !existsSync('/proc/cpuinfo')) return;
  const flags = /^flags\s*:(.*)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1].split(/\s+/) ?? [];
  const missing = ['avx2', 'fma'].filter((f) => !flags.includes(f));
  if (flags.length && missing.length) {
    throw new LmfError(
      'cpu_unsupported',
      `this CPU lacks ${missing.join(' and ')}, which LMFactory's x86-64 kernels need`,
      {
        hint: 'run on a CPU with AVX2 and FMA (Intel since Haswell, AMD since Zen), or expose them to the virtual machine',
      },
    );
  }
}

function load(): NativeAddon {
  // scripts/build.mjs puts the finished addon here, renamed into place whole
  const file = path.join(packageRoot, 'build', 'lmf_native.node');
  if (!existsSync(file)) {
    throw new LmfError('native_missing', 'the native addon is not built', {
      file,
      hint: 'run `bash scripts/setup.sh` (or `node scripts/build.mjs native`) in the project folder; it needs libdnnl-dev and g++',
    });
  }
  refuseCpuWithoutAvx2();
  const require = createRequire(import.meta.url);
  try {
    return require(file) as NativeAddon;
  } catch (err) {
    const message = (err as Error).message.replace(/^lmf_native: /, '');
    const forced = /^LMF_ISA=/.test(message);
    throw new LmfError(
      forced ? 'isa_unsupported' : 'native_unloadable',
      forced ? message : `the native addon cannot be loaded: ${message}`,
      {
        file,
        hint: forced
          ? 'unset LMF_ISA (the best path is then chosen), or name a lower one: avx2 runs on every supported x86-64 CPU'
          : 'rebuild it for this Node and CPU: `node scripts/build.mjs native` in the project folder (needs libdnnl-dev and g++)',
      },
    );
  }
}

/**
 * LMF_PROFILE=1 wraps every kernel in a timer and prints the time per kernel at exit: where a step's
 * time goes, without a profiler.
 */
function profiled(addon: NativeAddon): NativeAddon {
  const totals = new Map<string, { ms: number; calls: number }>();
  const wrapped: Record<string, unknown> = {};
  for (const [name, fn] of Object.entries(addon)) {
    wrapped[name] = (...args: unknown[]) => {
      const t0 = performance.now();
      const r = (fn as (...a: unknown[]) => unknown)(...args);
      const e = totals.get(name) ?? { ms: 0, calls: 0 };
      e.ms += performance.now() - t0;
      e.calls += 1;
      totals.set(name, e);
      return r;
    };
  }
  process.on('exit', () => {
    const rows = [...totals.entries()].sort((a, b) => b[1].ms - a[1].ms);
    for (const [name, e] of rows)
      process.stderr.write(
        `${name.padEnd(22)} ${e.ms.toFixed(1).padStart(10)} ms ${String(e.calls).padStart(8)} calls\n`,
      );
  });
  return wrapped as unknown as NativeAddon;
}

const addon = load();
export const native: NativeAddon = process.env.LMF_PROFILE ? profiled(addon) : addon;
