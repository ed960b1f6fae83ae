/** Every differentiable op, in one table the compiler checks: a new op without a spec does not build. */
import { addSpec } from './add.js';
import { affineSpec } from './affine.js';
import { attentionSpec } from './attention.js';
import { causalConvSiluSpec } from './causal-conv.js';
import { columnsSpec, groupedColumnsSpec } from './columns.js';
import { doraScaleSpec } from './dora-scale.js';
import { dropoutSpec } from './dropout.js';
import { embeddingSpec } from './embedding.js';
import { gatedDeltaSpec } from './gated-delta.js';
import { gatherRowsSpec } from './gather-rows.js';
import { ktoLossSpec } from './kto-loss.js';
import { linearSpec } from './linear.js';
import { lmHeadLogProbsSpec, lmHeadLossSpec } from './lm-head-loss.js';
import { loraLinearSpec } from './lora-linear.js';
import { preferenceLossSpec } from './preference-loss.js';
import { rewardLossSpec } from './reward-loss.js';
import { rmsnormSpec } from './rmsnorm.js';
import { softcapSpec } from './softcap.js';
import { ropeSpec } from './rope.js';
import type { OpSpec } from './spec.js';
import { gegluSpec, sigmoidGateSpec, swigluSpec } from './gated.js';

export type OpName =
  | 'linear'
  | 'add'
  | 'rmsnorm'
  | 'rope'
  | 'attention'
  | 'swiglu'
  | 'geglu'
  | 'sigmoidGate'
  | 'causalConvSilu'
  | 'gatedDelta'
  | 'affine'
  | 'columns'
  | 'groupedColumns'
  | 'softcap'
  | 'embedding'
  | 'lmHeadLoss'
  | 'lmHeadLogProbs'
  | 'dropout'
  | 'loraLinear'
  | 'doraScale'
  | 'gatherRows'
  | 'preferenceLoss'
  | 'rewardLoss'
  | 'ktoLoss';

export const opSpecs = {
  linear: linearSpec,
  add: addSpec,
  rmsnorm: rmsnormSpec,
  rope: ropeSpec,
  attention: attentionSpec,
  swiglu: swigluSpec,
  geglu: gegluSpec,
  sigmoidGate: sigmoidGateSpec,
  causalConvSilu: causalConvSiluSpec,
  gatedDelta: gatedDeltaSpec,
  affine: affineSpec,
  columns: columnsSpec,
  groupedColumns: groupedColumnsSpec,
  softcap: softcapSpec,
  embedding: embeddingSpec,
  lmHeadLoss: lmHeadLossSpec,
  lmHeadLogProbs: lmHeadLogProbsSpec,
  dropout: dropoutSpec,
  loraLinear: loraLinearSpec,
  doraScale: doraScaleSpec,
  gatherRows: gatherRowsSpec,
  preferenceLoss: preferenceLossSpec,
  rewardLoss: rewardLossSpec,
  ktoLoss: ktoLossSpec,
} satisfies Record<OpName, OpSpec>;

export { add } from './add.js';
export { affine } from './affine.js';
export {
  attention,
  attentionForward,
  attentionFromSaved,
  attentionOptions,
  type AttentionResult,
  type AttentionShape,
} from './attention.js';
export { causalConvSilu, causalConvSiluAfter, type ConvShape } from './causal-conv.js';
export { columns } from './columns.js';
export { doraScale } from './dora-scale.js';
export { dropout } from './dropout.js';
export { embedding } from './embedding.js';
export { deltaChannels, gatedDelta, gatedDeltaAfter, type DeltaShape } from './gated-delta.js';
export { gatherRows } from './gather-rows.js';
export { ktoLossOp, type KtoBatchValues, type KtoLoss } from './kto-loss.js';
export { linear } from './linear.js';
export { lmHeadLogProbs, lmHeadLoss } from './lm-head-loss.js';
export { loraLinear } from './lora-linear.js';
export { averaged, preferenceLossOp, sequenceLogps, type PreferenceBatch } from './preference-loss.js';
export { rewardLossOp } from './reward-loss.js';
export { rmsnorm, rmsnormScale } from './rmsnorm.js';
export { softcap } from './softcap.js';
export { rope, ropeTables, type RopeTables } from './rope.js';
export { geglu, sigmoidGate, swiglu } from './gated.js';
