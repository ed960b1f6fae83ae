/**
 * The board's wire format: what `lmf webui`'s JSON API sends and the page (web/src) reads, declared once for
 * both builds. Types and plain constants only — no Node module — so that vite bundles it into the page as it is.
 */

/** LLaMA-Factory's training stages. */
export const stages = ['pt', 'sft', 'rm', 'dpo', 'kto'] as const;
export type TrainStage = (typeof stages)[number];

/** dpo's pref_loss choices. */
export const prefLosses = ['sigmoid', 'hinge', 'ipo', 'orpo', 'simpo'] as const;

/** The values of LLaMA-Factory's `rope_scaling` key (the context stretch it asks of a model). */
export const ropeScalingKinds = ['linear', 'dynamic', 'yarn', 'llama3'] as const;
export type RopeScalingKind = (typeof ropeScalingKinds)[number];

/** One line of trainer_log.jsonl: LLaMA-Factory's fields, throughput and the stage's metrics. */
export interface LogRecord {
  current_steps: number;
  total_steps: number;
  loss?: number;
  eval_loss?: number;
  lr?: number;
  epoch: number;
  percentage: number;
  elapsed_time: string;
  remaining_time: string;
  tokens_per_s?: number;
  throughput?: number;
  grad_norm?: number;
  /** stage metrics (rewards/chosen, rewards/accuracies … for preference training) */
  [metric: string]: number | string | undefined;
}

export type JobKind = 'train' | 'eval' | 'export';
export type JobStatus = 'running' | 'finished' | 'failed' | 'aborted';

export interface JobInfo {
  id: string;
  kind: JobKind;
  /** where the command writes (output_dir, save_dir or export_dir) */
  outputDir: string;
  yaml: string;
  command: string[];
  status: JobStatus;
  exitCode: number | null;
  startedAt: string;
  endedAt: string | null;
  /** the CLI's own error lines when it failed */
  error: string | null;
}

export interface JobState {
  job: JobInfo | null;
  /** trainer_log.jsonl records from index `since` */
  records: LogRecord[];
  logTail: string;
  /** all_results.json / predict_results.json / eval results when the job has finished */
  results: Record<string, unknown> | null;
}

/** GET /api/model: a model folder described from its config.json, with the template guessed. */
export interface ModelInfo {
  architecture: string;
  modelType: string;
  /** the model family as users know it (Qwen3, Gemma 3 …) */
  family: string;
  parameters: number;
  dtype: string;
  layers: number;
  hidden: number;
  vocab: number;
  template: string;
  /** a base model (no chat template): the default template fits */
  base: boolean;
}

/** GET /api/datasets: the entries of dataset_info.json. */
export interface DatasetInfo {
  name: string;
  ranking: boolean;
  kto: boolean;
  formatting: string;
}

/** Which datasets a stage can train on: preference pairs for rm and dpo, tagged answers for kto, plain ones otherwise. */
export function datasetFitsStage(stage: string, d: DatasetInfo): boolean {
  return stage === 'rm' || stage === 'dpo' ? d.ranking : stage === 'kto' ? d.kto : !d.ranking && !d.kto;
}
