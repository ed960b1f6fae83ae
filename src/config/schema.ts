/**
 * One typed schema for every option, spelled as LLaMA-Factory's YAML keys so that its configs work here
 * unchanged. Validated at the edge (config/load.ts); everything inside receives a TrainConfig.
 */
import { z } from 'zod';
import { prefLosses, ropeScalingKinds, stages } from '../wire.js';

/** LLaMA-Factory reads YAML with PyYAML, where 1e-4 is a string: accept numbers written either way. */
const num = z.preprocess(
  (v) => (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v)) ? Number(v) : v),
  z.number(),
);
const int = z.preprocess((v) => (typeof v === 'string' && /^-?\d+$/.test(v.trim()) ? Number(v) : v), z.number().int());
/** "a,b,c" or a YAML list */
const nameList = z.preprocess(
  (v) =>
    typeof v === 'string'
      ? v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean)
      : v,
  z.array(z.string()),
);
const numList = z.preprocess(
  (v) => (typeof v === 'string' ? v.split(',').map((s) => Number(s.trim())) : v),
  z.array(z.number()),
);
const bool = z.preprocess((v) => (v === 'true' ? true : v === 'false' ? false : v), z.boolean());

export const configShape = {
  // model
  model_name_or_path: z.string(),
  adapter_name_or_path: nameList.optional(),
  /** the Hugging Face cache's revision (branch, tag or commit) of Hub ids */
  model_revision: z.string().default('main'),
  /** accepted for LLaMA-Factory configs; no remote code is ever run */
  trust_remote_code: bool.default(false),
  /** LLaMA-Factory's: stretch the model's context to cutoff_len with this rope scaling (at inference: by 2) */
  rope_scaling: z.enum(ropeScalingKinds).nullable().default(null),
  // method
  stage: z.enum(stages).default('sft'),
  /** default: train unless the config only asks for do_predict */
  do_train: bool.optional(),
  do_eval: bool.default(false),
  do_predict: bool.default(false),
  finetuning_type: z.enum(['lora', 'freeze', 'full']).default('lora'),
  // lora
  lora_rank: int.pipe(z.number().positive()).default(8),
  lora_alpha: num.pipe(z.number().positive()).optional(),
  lora_dropout: num.pipe(z.number().min(0).max(0.99)).default(0),
  lora_target: nameList.default(['all']),
  additional_target: nameList.optional(),
  use_rslora: bool.default(false),
  use_dora: bool.default(false),
  loraplus_lr_ratio: num.pipe(z.number().positive()).optional(),
  create_new_adapter: bool.default(false),
  /** QLoRA: the frozen base quantized to 4 or 8 bits as it loads (LoRA only) */
  quantization_bit: z
    .preprocess(
      (v) => (typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v),
      z.union([z.literal(4), z.literal(8)]),
    )
    .nullable()
    .default(null),
  /** bnb (bitsandbytes' formats); LLaMA-Factory's other methods are refused by name */
  quantization_method: z.string().default('bnb'),
  quantization_type: z.enum(['nf4', 'fp4']).default('nf4'),
  double_quantization: bool.default(true),
  /** PiSSA: new adapters start from each weight's principal singular directions, the base keeps the residual */
  pissa_init: bool.default(false),
  /** power iterations of PiSSA's randomized SVD; -1: the exact decomposition */
  pissa_iter: int.pipe(z.number().min(-1)).default(16),
  /** also write pissa_converted/: the trained PiSSA adapter as a plain LoRA (rank 2r) for the original model */
  pissa_convert: bool.default(false),
  // freeze
  freeze_trainable_layers: int.default(2),
  freeze_trainable_modules: nameList.default(['all']),
  freeze_extra_modules: nameList.optional(),
  /** LLaMA Pro: with finetuning_type freeze, train only the blocks `lmf expand` added (freeze_trainable_layers of them) */
  use_llama_pro: bool.default(false),
  // preference stages
  pref_beta: num.pipe(z.number().positive()).default(0.1),
  pref_loss: z.enum(prefLosses).default('sigmoid'),
  pref_ftx: num.pipe(z.number().min(0)).default(0),
  dpo_label_smoothing: num.pipe(z.number().min(0).max(0.5)).default(0),
  simpo_gamma: num.pipe(z.number().min(0)).default(0.5),
  ref_model: z.string().optional(),
  kto_chosen_weight: num.pipe(z.number().positive()).default(1),
  kto_rejected_weight: num.pipe(z.number().positive()).default(1),
  // data
  dataset: nameList.optional(),
  eval_dataset: nameList.optional(),
  dataset_dir: z.string().default('data'),
  template: z.string().nullable().optional(),
  cutoff_len: int.pipe(z.number().positive()).default(2048),
  max_samples: int.pipe(z.number().positive()).optional(),
  val_size: num.pipe(z.number().min(0)).default(0),
  packing: bool.optional(),
  neat_packing: bool.default(false),
  train_on_prompt: bool.default(false),
  mask_history: bool.default(false),
  mix_strategy: z.enum(['concat', 'interleave_under', 'interleave_over']).default('concat'),
  interleave_probs: numList.optional(),
  enable_thinking: bool.nullable().default(true),
  overwrite_cache: bool.default(false),
  /** LLaMA-Factory's: a folder that keeps the tokenised data; when it holds some, the datasets are not read */
  tokenized_path: z.string().optional(),
  /** LMFactory's: training stops when more than this share of the rows are invalid (they are dropped otherwise) */
  max_invalid_ratio: num.pipe(z.number().min(0).max(1)).default(0.2),
  preprocessing_num_workers: int.pipe(z.number().positive()).optional(),
  // output
  output_dir: z.string().default('saves/run'),
  overwrite_output_dir: bool.default(false),
  logging_steps: int.pipe(z.number().positive()).default(10),
  save_steps: int.pipe(z.number().positive()).default(500),
  save_total_limit: int.pipe(z.number().positive()).optional(),
  eval_steps: int.pipe(z.number().positive()).optional(),
  /** Hugging Face Trainer's: evaluate once before the first step (the curve's starting point) */
  eval_on_start: bool.default(false),
  plot_loss: bool.default(false),
  /** accepted for LLaMA-Factory configs; LMFactory reports to trainer_log.jsonl only */
  report_to: z.string().default('none'),
  // optimisation
  per_device_train_batch_size: int.pipe(z.number().positive()).default(1),
  per_device_eval_batch_size: int.pipe(z.number().positive()).default(1),
  gradient_accumulation_steps: int.pipe(z.number().positive()).default(1),
  learning_rate: num.pipe(z.number().positive()).default(5e-5),
  num_train_epochs: num.pipe(z.number().positive()).default(3),
  max_steps: int.default(-1),
  lr_scheduler_type: z
    .enum(['linear', 'cosine', 'cosine_with_restarts', 'polynomial', 'constant', 'constant_with_warmup'])
    .default('linear'),
  warmup_ratio: num.pipe(z.number().min(0).max(1)).default(0),
  warmup_steps: int.pipe(z.number().min(0)).default(0),
  weight_decay: num.pipe(z.number().min(0)).default(0),
  adam_beta1: num.pipe(z.number().min(0).max(1)).default(0.9),
  adam_beta2: num.pipe(z.number().min(0).max(1)).default(0.999),
  adam_epsilon: num.pipe(z.number().positive()).default(1e-8),
  max_grad_norm: num.pipe(z.number().min(0)).default(1),
  seed: int.default(42),
  bf16: bool.default(false),
  fp16: bool.default(false),
  neftune_noise_alpha: num.pipe(z.number().min(0)).optional(),
  /** LLaMA-Factory's: layers recompute their activations in the backward pass unless this is true */
  disable_gradient_checkpointing: bool.default(false),
  resume_from_checkpoint: z.union([bool, z.string()]).optional(),
  /** accepted for LLaMA-Factory configs (no effect: a rank that stops ends the job through mpirun) */
  ddp_timeout: int.optional(),
  /** a DeepSpeed JSON as LLaMA-Factory takes it: zero_optimization.stage 1 or 2 shards the optimiser (ZeRO-1) */
  deepspeed: z.string().optional(),
  // generation (chat, api, predict): unset keys fall back to generation_config.json, then LLaMA-Factory's defaults
  do_sample: bool.optional(),
  temperature: num.pipe(z.number().min(0)).optional(),
  top_p: num.pipe(z.number().gt(0).max(1)).optional(),
  top_k: int.pipe(z.number().min(0)).optional(),
  max_new_tokens: int.pipe(z.number().positive()).optional(),
  repetition_penalty: num.pipe(z.number().positive()).optional(),
  default_system: z.string().optional(),
  /** weights' precision at inference and export: auto follows the checkpoint's torch_dtype */
  infer_dtype: z.enum(['auto', 'float16', 'bfloat16', 'float32']).default('auto'),
  infer_backend: z.enum(['huggingface']).default('huggingface'),
  predict_with_generate: bool.default(false),
  // export
  export_dir: z.string().optional(),
  /** shard size in GB */
  export_size: num.pipe(z.number().positive()).default(5),
  /** accepted for LLaMA-Factory configs; LMFactory always writes safetensors */
  export_legacy_format: z.literal(false).default(false),
  /** also write model.gguf (llama.cpp) in this type */
  export_gguf: z.enum(['f16', 'bf16', 'q8_0', 'q4_0', 'q4_k_m']).optional(),
  // multiple-choice evaluation (lmf eval)
  task: z.string().optional(),
  task_dir: z.string().default('evaluation'),
  n_shot: int.pipe(z.number().min(0)).default(5),
  lang: z.enum(['en', 'zh']).default('en'),
  save_dir: z.string().optional(),
  batch_size: int.pipe(z.number().positive()).default(4),
};

export const configSchema = z.strictObject(configShape);

export type TrainConfig = z.infer<typeof configSchema>;

export const configKeys = Object.keys(configShape);
