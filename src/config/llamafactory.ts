/**
 * LLaMA-Factory's keys that LMFactory's schema does not read, each with LLaMA-Factory's default and what a
 * value other than that default means here: a notice (accepted, with one line saying what it means on this
 * engine) or a refusal (the reason). A key at its default, or null (Python's None), is accepted silently, so
 * LLaMA-Factory's own YAMLs load unchanged. Keys the schema reads (schema.ts) are implemented.
 */
import { isDeepStrictEqual } from 'node:util';

export interface ForeignKey {
  /** LLaMA-Factory's default: this value (or null) is accepted without a word */
  default: unknown;
  /** accepted with this notice when set otherwise */
  notice?: string;
  /** refused with this reason when set otherwise */
  refuse?: string;
}

const notice = (note: string, value: unknown = null): ForeignKey => ({ default: value, notice: note });
const refuse = (why: string, value: unknown = null): ForeignKey => ({ default: value, refuse: why });

const engine = 'LMFactory runs its own CPU engine';
const multimodal = 'images, video and audio are not supported (text models only)';
const noNetwork = 'LMFactory does not upload or report to remote services';
const launcher = 'ranks are the processes mpirun, srun or `lmf train --nproc` starts, and meet through Open MPI';
const notYet = (what: string) => `${what} is not implemented yet`;

/** Every key with the same treatment, by LLaMA-Factory's default. */
function all(keys: Record<string, unknown>, make: (value: unknown) => ForeignKey): Record<string, ForeignKey> {
  return Object.fromEntries(Object.entries(keys).map(([k, v]) => [k, make(v)]));
}

export const foreignKeys: Record<string, ForeignKey> = {
  // model loading and kernels: choices for GPUs and other engines
  ...all(
    {
      flash_attn: 'auto',
      use_unsloth: false,
      use_unsloth_gc: false,
      enable_liger_kernel: false,
      use_v1_kernels: false,
      low_cpu_mem_usage: true,
      upcast_layernorm: false,
      upcast_lmhead_output: false,
      pure_bf16: false,
      offload_folder: 'offload',
      use_kv_cache: true,
      use_reentrant_gc: true,
      export_device: 'cpu',
      use_fast_tokenizer: true,
      moe_aux_loss_coef: null,
      print_param_status: false,
    },
    (v) => notice(`${engine}; this setting has no effect`, v),
  ),
  gradient_checkpointing: notice(
    'gradient checkpointing is on unless disable_gradient_checkpointing: true (as LLaMA-Factory)',
    false,
  ),
  // the Hugging Face Hub
  cache_dir: notice('Hub ids are looked up in HF_HUB_CACHE (or HF_HOME/hub); set those instead', null),
  hf_hub_token: notice('Hub ids are read from the local Hugging Face cache; nothing is downloaded', null),
  ms_hub_token: refuse('ModelScope is not supported'),
  om_hub_token: refuse('Modelers is not supported'),
  export_hub_model_id: refuse(noNetwork),
  push_to_hub: refuse(noNetwork, false),
  hub_private_repo: refuse(noNetwork),
  // tokenizer edits
  resize_vocab: refuse(notYet('resizing the vocabulary'), false),
  split_special_tokens: refuse(notYet('splitting special tokens'), false),
  add_tokens: refuse(notYet('adding tokens')),
  add_special_tokens: refuse(notYet('adding special tokens')),
  new_special_tokens_config: refuse(notYet('adding special tokens')),
  init_special_tokens: refuse(notYet('initialising added tokens'), 'noise_init'),
  adapter_folder: refuse(notYet('adapter_folder (use adapter_name_or_path)')),
  // architecture changes
  shift_attn: refuse(notYet('shift short attention (S^2-Attn)'), false),
  mixture_of_depths: refuse(notYet('mixture of depths')),
  train_from_scratch: refuse('start from scratch with `lmf init` (a randomly initialised model folder)', false),
  // quantization beyond QLoRA's base (quantization_bit and its settings are read: config/schema.ts)
  quantization_device_map: notice('the model runs on the CPU; this setting has no effect', null),
  ...all(
    {
      export_quantization_bit: null,
      export_quantization_dataset: null,
      export_quantization_nsamples: 128,
      export_quantization_maxlen: 1024,
    },
    (v) => refuse('quantized export (GPTQ) is not supported; export_gguf writes q8_0', v),
  ),
  ...all({ ref_model_quantization_bit: null, reward_model_quantization_bit: null }, (v) =>
    refuse('a quantized reference or reward model is not supported; quantization_bit applies to the trained model', v),
  ),
  // multimodal
  ...all(
    {
      media_dir: null,
      image_max_pixels: 589824,
      image_min_pixels: 1024,
      image_do_pan_and_scan: false,
      crop_to_patches: false,
      video_max_pixels: 65536,
      video_min_pixels: 256,
      video_fps: 2.0,
      video_maxlen: 128,
      use_audio_in_video: false,
      audio_sampling_rate: 16000,
      freeze_vision_tower: true,
      freeze_multi_modal_projector: true,
      freeze_language_model: false,
    },
    (v) => refuse(multimodal, v),
  ),
  // other inference backends and engines
  ...all(
    {
      vllm_maxlen: 4096,
      vllm_gpu_util: 0.7,
      vllm_enforce_eager: false,
      vllm_max_lora_rank: 32,
      vllm_config: null,
      sglang_maxlen: 4096,
      sglang_mem_fraction: 0.7,
      sglang_tp_size: -1,
      sglang_config: null,
      sglang_lora_backend: 'triton',
    },
    (v) => notice(`${engine} (infer_backend huggingface); vLLM and SGLang settings have no effect`, v),
  ),
  ...all(
    {
      use_kt: false,
      kt_cpu_activation: null,
      kt_weight_path: null,
      kt_non_expert_weight_path: null,
      kt_expert_checkpoint_path: null,
      kt_use_lora_experts: null,
      kt_lora_expert_num: null,
      kt_lora_expert_intermediate_size: null,
      kt_config: null,
      use_mca: false,
      use_megatron_bridge: false,
      use_hyper_parallel: false,
      hyper_parallel_args: null,
      hyper_parallel_cp_size: 1,
      tensor_model_parallel_size: 1,
      pipeline_model_parallel_size: 1,
      expert_model_parallel_size: 1,
      context_parallel_size: 1,
      virtual_pipeline_model_parallel_size: null,
      sequence_parallel: false,
      recompute_granularity: null,
      recompute_method: null,
      recompute_num_layers: null,
      account_for_embedding_in_pipeline_split: null,
      account_for_loss_in_pipeline_split: null,
      bias_activation_fusion: null,
      apply_rope_fusion: null,
      masked_softmax_fusion: null,
      cross_entropy_loss_fusion: null,
      moe_grouped_gemm: null,
      moe_token_dispatcher_type: null,
      calculate_per_token_loss: null,
      use_distributed_optimizer: true,
      overlap_param_gather: true,
      overlap_grad_reduce: true,
      use_packed_sequences: false,
      mixed_precision: 'bf16_mixed',
      megatron_pretrained_checkpoint: null,
      export_hf_on_finish: false,
      extra_config: null,
    },
    (v) => refuse('KTransformers, Megatron and model-parallel engines are not supported', v),
  ),
  // distribution and launch
  ...all(
    {
      fsdp: null,
      fsdp_config: null,
      fsdp_transformer_layer_cls_to_wrap: null,
      ddp_find_unused_parameters: null,
      master_addr: null,
      master_port: null,
      ray_num_workers: 1,
      ray_init_kwargs: null,
      accelerator_config: null,
    },
    (v) => notice(`${launcher}; this setting has no effect`, v),
  ),
  // data pipeline
  ...all(
    {
      dataloader_num_workers: 0,
      preprocessing_batch_size: 1000,
      buffer_size: 16384,
      data_shared_file_system: false,
      remove_unused_columns: true,
      label_names: null,
    },
    (v) => notice('data is tokenised ahead and cached; this setting has no effect', v),
  ),
  ignore_pad_token_for_loss: notice('padding never counts in the loss', true),
  streaming: refuse(notYet('streaming datasets'), false),
  eval_on_each_dataset: refuse(notYet('evaluating each eval dataset apart'), false),
  tool_format: refuse(notYet("tool_format (the template's own tool format is used)")),
  preserve_thinking: refuse(notYet('preserve_thinking'), false),
  disable_shuffling: refuse(notYet('disable_shuffling'), false),
  // logging, saving, evaluation scheduling
  ...all({ run_name: null, logging_dir: null, project: 'huggingface', trackio_space_id: 'trackio' }, (v) =>
    notice('progress goes to trainer_log.jsonl and the terminal; this setting has no effect', v),
  ),
  logging_strategy: refuse('logging happens every logging_steps', 'steps'),
  save_strategy: refuse('checkpoints are saved every save_steps', 'steps'),
  eval_strategy: notice('evaluation runs every eval_steps when there is an eval set (val_size or eval_dataset)', 'no'),
  save_only_model: notice('checkpoints always keep the optimizer state, so that a run resumes exactly', false),
  include_effective_tokens_per_second: notice('tokens per second are always logged', false),
  load_best_model_at_end: refuse(notYet('load_best_model_at_end'), false),
  metric_for_best_model: refuse(notYet('metric_for_best_model')),
  early_stopping_steps: refuse(notYet('early stopping')),
  compute_accuracy: refuse(notYet('compute_accuracy'), false),
  enable_torch_profiler: refuse('the PyTorch profiler does not apply (lmf bench measures speed)', false),
  ...all(
    {
      profiler_output_dir: null,
      profiler_wait_steps: 1,
      profiler_warmup_steps: 1,
      profiler_active_steps: 1,
      profiler_repeat: 1,
      profiler_record_shapes: true,
      profiler_profile_memory: true,
      profiler_with_stack: true,
      profile_modules: null,
    },
    (v) => notice('the PyTorch profiler does not apply; this setting has no effect', v),
  ),
  use_swanlab: refuse(noNetwork, false),
  ...all(
    {
      swanlab_project: 'llamafactory',
      swanlab_workspace: null,
      swanlab_run_name: null,
      swanlab_mode: 'cloud',
      swanlab_api_key: null,
      swanlab_logdir: null,
      swanlab_lark_webhook_url: null,
      swanlab_lark_secret: null,
    },
    (v) => notice(`${noNetwork}; this setting has no effect`, v),
  ),
  // optimisers and training methods not implemented
  optim: notice('the optimizer is AdamW (adamw_torch)', 'adamw_torch'),
  fp8: refuse('fp8 needs GPU tensor cores', false),
  fp8_backend: notice('fp8 needs GPU tensor cores; this setting has no effect', 'auto'),
  fp8_enable_fsdp_float8_all_gather: notice('fp8 needs GPU tensor cores; this setting has no effect', false),
  ...all(
    {
      use_galore: false,
      use_apollo: false,
      use_badam: false,
      use_adam_mini: false,
      use_muon: false,
      use_dft_loss: false,
      use_asft_loss: false,
      use_eaft_loss: false,
    },
    (v) => refuse(notYet('this method'), v),
  ),
  ...all(
    {
      galore_target: 'all',
      galore_rank: 16,
      galore_update_interval: 200,
      galore_scale: 2.0,
      galore_proj_type: 'std',
      galore_layerwise: false,
      apollo_target: 'all',
      apollo_rank: 16,
      apollo_update_interval: 200,
      apollo_scale: 32.0,
      apollo_proj: 'random',
      apollo_proj_type: 'std',
      apollo_scale_type: 'channel',
      apollo_layerwise: false,
      apollo_scale_front: false,
      badam_mode: 'layer',
      badam_start_block: null,
      badam_switch_mode: 'ascending',
      badam_switch_interval: 50,
      badam_update_ratio: 0.05,
      badam_mask_mode: 'adjacent',
      badam_verbose: 0,
      asft_alpha: 0.1,
      eaft_alpha: 1.0,
      oft_rank: 0,
      oft_block_size: 32,
      oft_target: 'all',
    },
    (v) => notice('this method is not implemented; its setting has no effect', v),
  ),
  module_dropout: refuse(notYet('module_dropout'), 0),
  loraplus_lr_embedding: notice('LoRA+ here never trains embeddings; this setting has no effect', 1e-6),
  pref_bco_weight: refuse(notYet('the BCO term'), 0),
  ld_alpha: refuse(notYet('LD-DPO (ld_alpha)')),
  ref_model_adapters: refuse(notYet('adapters on the reference model')),
  ...all(
    {
      ppo_buffer_size: 1,
      ppo_epochs: 4,
      ppo_score_norm: false,
      ppo_target: 6.0,
      ppo_whiten_rewards: false,
      reward_model: null,
      reward_model_adapters: null,
      reward_model_type: 'lora',
    },
    (v) => notice('stage ppo is not implemented; this setting has no effect', v),
  ),
  // generation and evaluation
  num_beams: refuse(notYet('beam search'), 1),
  eval_num_beams: refuse(notYet('beam search')),
  generation_num_beams: refuse(notYet('beam search')),
  length_penalty: notice('without beam search the length penalty has no effect', 1.0),
  max_length: notice('answers are bounded by max_new_tokens and the model context', 1024),
  generation_max_length: notice('answers are bounded by max_new_tokens and the model context'),
  skip_special_tokens: notice('special tokens are always left out of answers', true),
  download_mode: notice('evaluation tasks are read from task_dir', 'reuse_dataset_if_exists'),
};

/** What to do with a key of a config that the schema does not read. */
export type ForeignVerdict = { kind: 'silent' } | { kind: 'notice'; line: string } | { kind: 'refuse'; why: string };

export function judgeForeignKey(key: string, value: unknown): ForeignVerdict | null {
  const k = foreignKeys[key];
  if (!k) return null;
  if (value === null || value === undefined || isDeepStrictEqual(value, k.default)) return { kind: 'silent' };
  if (typeof value === 'string' && typeof k.default === 'number' && Number(value) === k.default)
    return { kind: 'silent' };
  if (k.refuse) return { kind: 'refuse', why: k.refuse };
  return { kind: 'notice', line: `${key}: ${k.notice}` };
}
