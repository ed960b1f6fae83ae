/**
 * The reward model's value head: one linear layer from the hidden size to a score, read at each sequence's
 * last token. Saved as value_head.safetensors with LLaMA-Factory's (TRL's) names v_head.summary.weight/bias.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { LmfError } from '../errors.js';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.js';
import { gatherRows, linear } from '../tensor/ops/index.js';
import { Rng } from '../tensor/random.js';
import { persistent, Tensor } from '../tensor/tensor.js';

export class ValueHead {
  readonly weight: Tensor<'f32'>;
  readonly bias: Tensor<'f32'>;

  private constructor(weight: Tensor<'f32'>, bias: Tensor<'f32'>) {
    this.weight = weight;
    this.bias = bias;
  }

  static create(hidden: number, seed: number): ValueHead {
    const rng = new Rng(seed);
    return persistent(
      () =>
        new ValueHead(
          Tensor.from(
            Float32Array.from({ length: hidden }, () => rng.normal() / Math.sqrt(hidden)),
            [1, hidden],
            'f32',
          ),
          Tensor.zeros([1], 'f32'),
        ),
    );
  }

  static load(dir: string): ValueHead {
    const file = path.join(dir, 'value_head.safetensors');
    if (!existsSync(file))
      throw new LmfError('file_missing', 'value_head.safetensors not found: this is not a reward model output', {
        file,
      });
    const st = SafetensorsFile.open(file);
    try {
      return persistent(
        () =>
          new ValueHead(
            st.read('v_head.summary.weight', 'f32') as Tensor<'f32'>,
            st.read('v_head.summary.bias', 'f32') as Tensor<'f32'>,
          ),
      );
    } finally {
      st.close();
    }
  }

  parameters(): [string, Tensor<'f32'>][] {
    return [
      ['v_head.summary.weight', this.weight],
      ['v_head.summary.bias', this.bias],
    ];
  }

  /** Scores [rows.length] from hidden states [N, C] at the given token rows. */
  scores(hidden: Tensor<'f32'>, rows: number[]): Tensor<'f32'> {
    return linear(gatherRows(hidden, rows), this.weight, this.bias);
  }

  save(dir: string): void {
    writeSafetensors(
      path.join(dir, 'value_head.safetensors'),
      new Map(this.parameters().map(([n, t]) => [n, { tensor: t, dtype: 'F32' as const }])),
    );
  }

  dispose(): void {
    this.weight.dispose();
    this.bias.dispose();
  }
}

/** Flat index of each row's last real token in a right-padded batch of rows of `seq` tokens. */
export function lastTokenRows(seq: number, lengths: number[]): number[] {
  return lengths.map((len, b) => b * seq + Math.max(0, len - 1));
}
