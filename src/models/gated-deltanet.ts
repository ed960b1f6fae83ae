/**
 * Qwen3.5's Gated DeltaNet token mixer (HF's Qwen3_5GatedDeltaNet, `linear_attn.*`): in_proj_qkv, a causal
 * depthwise conv1d with SiLU, the gated delta rule per value head (beta from in_proj_b, decay from in_proj_a,
 * A_log and dt_bias), RMSNorm over each head's values (weight `norm`, no offset) times silu(in_proj_z), out_proj.
 * Training runs it over the batch (segments restart the state); generation continues each sequence from its
 * state: the conv window of its K-1 latest inputs and the recurrent state [Hv, dk, dv].
 */
import {
  causalConvSilu,
  causalConvSiluAfter,
  deltaChannels,
  gatedDelta,
  gatedDeltaAfter,
  rmsnorm,
  swiglu,
} from '../tensor/ops/index.js';
import { Tensor } from '../tensor/tensor.js';
import type { ForwardPass, Linear } from '../nn/linear.js';
import type { LinearAttentionSizes } from './config.js';

/** One sequence's generation state for one DeltaNet layer. */
export interface DeltaNetState {
  /** the K-1 latest inputs of the convolution, oldest first [(K-1) * channels] */
  conv: Float32Array;
  /** the recurrent state [Hv, dk, dv] */
  recurrent: Float32Array;
}

/** How a DeltaNet layer runs: over a training batch, or continuing sequences (rows from..from+count) from their states. */
export type DeltaRun =
  | { kind: 'batch'; batch: number; seq: number; segments: Tensor<'i32'> | null }
  | { kind: 'cached'; sequences: { from: number; count: number; state: DeltaNetState }[] };

export interface DeltaNetProjections {
  qkv: Linear;
  z: Linear;
  b: Linear;
  a: Linear;
  out: Linear;
}

export class GatedDeltaNet {
  constructor(
    readonly proj: DeltaNetProjections,
    /** conv1d.weight [channels, 1, K] */
    readonly conv: Tensor<'f32'>,
    readonly aLog: Tensor<'f32'>,
    readonly dtBias: Tensor<'f32'>,
    /** norm.weight [valueDim] */
    readonly norm: Tensor<'f32'>,
    readonly sizes: LinearAttentionSizes,
    private readonly eps: number,
  ) {}

  forward(x: Tensor<'f32'>, run: DeltaRun, pass: ForwardPass = {}): Tensor<'f32'> {
    const mixed = this.proj.qkv.forward(x, pass);
    const b = this.proj.b.forward(x, pass);
    const a = this.proj.a.forward(x, pass);
    const core = run.kind === 'batch' ? this.batch(mixed, b, a, run) : this.continued(mixed, b, a, run);
    const z = this.proj.z.forward(x, pass);
    return this.proj.out.forward(swiglu(z, rmsnorm(core, this.norm, this.eps)), pass);
  }

  private batch(mixed: Tensor<'f32'>, b: Tensor<'f32'>, a: Tensor<'f32'>, run: DeltaRun & { kind: 'batch' }) {
    const qkv = causalConvSilu(mixed, this.conv, run);
    return gatedDelta(qkv, b, a, this.aLog, this.dtBias, { ...this.sizes, ...run });
  }

  /** Generation (no gradient): each sequence's rows from its state, which moves past them. */
  private continued(mixed: Tensor<'f32'>, b: Tensor<'f32'>, a: Tensor<'f32'>, run: DeltaRun & { kind: 'cached' }) {
    const s = this.sizes;
    const C = deltaChannels(s),
      V = s.valueHeads * s.valueDim;
    const out = Tensor.empty([mixed.size / C, V], 'f32');
    const rows = (t: Tensor<'f32'>, width: number, from: number, count: number) =>
      Tensor.from(t.data.subarray(from * width, (from + count) * width), [count, width], 'f32');
    for (const { from, count, state } of run.sequences) {
      const input = rows(mixed, C, from, count);
      const qkv = causalConvSiluAfter(input, this.conv, state.conv);
      slideWindow(state.conv, input.data, C);
      const core = gatedDeltaAfter(
        qkv,
        rows(b, s.valueHeads, from, count),
        rows(a, s.valueHeads, from, count),
        this.aLog,
        this.dtBias,
        s,
        state.recurrent,
      );
      out.data.set(core.data, from * V);
    }
    return out;
  }

  /** A fresh generation state (nothing seen). */
  newState(): DeltaNetState {
    const s = this.sizes;
    return {
      conv: new Float32Array((s.convKernel - 1) * deltaChannels(s)),
      recurrent: new Float32Array(s.valueHeads * s.keyDim * s.valueDim),
    };
  }

  /** Hugging Face module names of the projections (relative to the layer). */
  projections(): [string, Linear][] {
    const p = this.proj;
    return [
      ['linear_attn.in_proj_qkv', p.qkv],
      ['linear_attn.in_proj_z', p.z],
      ['linear_attn.in_proj_b', p.b],
      ['linear_attn.in_proj_a', p.a],
      ['linear_attn.out_proj', p.out],
    ];
  }

  /** The other parameters by Hugging Face name (relative to the layer). */
  namedParameters(): [string, Tensor<'f32'>][] {
    return [
      ['linear_attn.conv1d.weight', this.conv],
      ['linear_attn.dt_bias', this.dtBias],
      ['linear_attn.A_log', this.aLog],
      ['linear_attn.norm.weight', this.norm],
    ];
  }
}

/** The window of the latest K-1 rows after appending `rows` (each `width` wide), in place. */
function slideWindow(window: Float32Array, rows: Float32Array, width: number): void {
  const keep = window.length / width;
  const added = rows.length / width;
  if (added >= keep) {
    window.set(rows.subarray((added - keep) * width));
    return;
  }
  window.copyWithin(0, added * width);
  window.set(rows, (keep - added) * width);
}
