// Every key of LLaMA-Factory's argument classes (ModelArguments, DataArguments, FinetuningArguments,
// GeneratingArguments, EvaluationArguments, its TrainingArguments additions, and the transformers training keys
// its examples use; read from its hparams sources at commit ff6d4d1) is implemented, or accepted with a notice,
// or refused with a reason; a LLaMA-Factory YAML with every key at its default loads without a word.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { foreignKeys, judgeForeignKey } from '../../src/config/llamafactory.js';
import { loadConfig } from '../../src/config/load.js';
import { configShape } from '../../src/config/schema.js';
import { LmfError } from '../../src/errors.js';

/** Space-separated per line, by argument class. */
const llamaFactoryKeys: Record<string, string[]> = {
  model: [
    'model_name_or_path adapter_name_or_path adapter_folder cache_dir use_fast_tokenizer resize_vocab',
    'split_special_tokens add_tokens add_special_tokens new_special_tokens_config init_special_tokens',
    'model_revision low_cpu_mem_usage rope_scaling flash_attn shift_attn mixture_of_depths use_unsloth',
    'use_unsloth_gc enable_liger_kernel moe_aux_loss_coef disable_gradient_checkpointing use_reentrant_gc',
    'upcast_layernorm upcast_lmhead_output train_from_scratch infer_backend offload_folder use_kv_cache',
    'use_v1_kernels infer_dtype hf_hub_token ms_hub_token om_hub_token print_param_status trust_remote_code',
    'quantization_method quantization_bit quantization_type double_quantization quantization_device_map',
    'image_max_pixels image_min_pixels image_do_pan_and_scan crop_to_patches video_max_pixels',
    'video_min_pixels video_fps video_maxlen use_audio_in_video audio_sampling_rate export_dir export_size',
    'export_device export_quantization_bit export_quantization_dataset export_quantization_nsamples',
    'export_quantization_maxlen export_legacy_format export_hub_model_id use_kt kt_cpu_activation',
    'kt_weight_path kt_non_expert_weight_path kt_expert_checkpoint_path kt_use_lora_experts',
    'kt_lora_expert_num kt_lora_expert_intermediate_size vllm_maxlen vllm_gpu_util vllm_enforce_eager',
    'vllm_max_lora_rank vllm_config sglang_maxlen sglang_mem_fraction sglang_tp_size sglang_config',
    'sglang_lora_backend',
  ],
  data: [
    'template dataset eval_dataset dataset_dir media_dir cutoff_len train_on_prompt mask_history streaming',
    'buffer_size mix_strategy interleave_probs overwrite_cache preprocessing_batch_size',
    'preprocessing_num_workers max_samples eval_num_beams ignore_pad_token_for_loss val_size',
    'eval_on_each_dataset packing neat_packing tool_format default_system enable_thinking preserve_thinking',
    'tokenized_path data_shared_file_system',
  ],
  training: [
    'ray_num_workers ray_init_kwargs master_addr master_port fp8 fp8_backend',
    'fp8_enable_fsdp_float8_all_gather enable_torch_profiler profiler_output_dir profiler_wait_steps',
    'profiler_warmup_steps profiler_active_steps profiler_repeat profiler_record_shapes',
    'profiler_profile_memory profiler_with_stack profile_modules overwrite_output_dir',
  ],
  finetuning: [
    'freeze_trainable_layers freeze_trainable_modules freeze_extra_modules additional_target module_dropout',
    'oft_rank oft_block_size oft_target create_new_adapter lora_alpha lora_dropout lora_rank lora_target',
    'loraplus_lr_ratio loraplus_lr_embedding use_rslora use_dora pissa_init pissa_iter pissa_convert',
    'pref_beta pref_ftx pref_bco_weight pref_loss dpo_label_smoothing kto_chosen_weight kto_rejected_weight',
    'simpo_gamma ppo_buffer_size ppo_epochs ppo_score_norm ppo_target ppo_whiten_rewards ref_model',
    'ref_model_adapters ref_model_quantization_bit reward_model reward_model_adapters',
    'reward_model_quantization_bit reward_model_type ld_alpha use_galore galore_target galore_rank',
    'galore_update_interval galore_scale galore_proj_type galore_layerwise use_apollo apollo_target',
    'apollo_rank apollo_update_interval apollo_scale apollo_proj apollo_proj_type apollo_scale_type',
    'apollo_layerwise apollo_scale_front use_badam badam_mode badam_start_block badam_switch_mode',
    'badam_switch_interval badam_update_ratio badam_mask_mode badam_verbose use_swanlab swanlab_project',
    'swanlab_workspace swanlab_run_name swanlab_mode swanlab_api_key swanlab_logdir swanlab_lark_webhook_url',
    'swanlab_lark_secret pure_bf16 stage finetuning_type use_llama_pro use_adam_mini use_mca',
    'use_megatron_bridge use_hyper_parallel hyper_parallel_args hyper_parallel_cp_size use_muon use_dft_loss',
    'use_asft_loss asft_alpha use_eaft_loss eaft_alpha freeze_vision_tower freeze_multi_modal_projector',
    'freeze_language_model compute_accuracy disable_shuffling early_stopping_steps plot_loss',
    'include_effective_tokens_per_second',
  ],
  generating: [
    'do_sample temperature top_p top_k num_beams max_length max_new_tokens repetition_penalty length_penalty',
    'skip_special_tokens',
  ],
  evaluation: ['task task_dir batch_size seed lang n_shot save_dir download_mode'],
  megatron_bridge: [
    'tensor_model_parallel_size pipeline_model_parallel_size expert_model_parallel_size context_parallel_size',
    'virtual_pipeline_model_parallel_size sequence_parallel recompute_granularity recompute_method',
    'recompute_num_layers account_for_embedding_in_pipeline_split account_for_loss_in_pipeline_split',
    'bias_activation_fusion apply_rope_fusion masked_softmax_fusion cross_entropy_loss_fusion',
    'moe_grouped_gemm moe_token_dispatcher_type calculate_per_token_loss use_distributed_optimizer',
    'overlap_param_gather overlap_grad_reduce use_packed_sequences mixed_precision',
    'megatron_pretrained_checkpoint export_hf_on_finish extra_config',
  ],
  kt_runtime: ['kt_config'],
  hf_training: [
    'do_train dataloader_num_workers output_dir logging_steps save_steps max_steps save_only_model report_to',
    'per_device_train_batch_size gradient_accumulation_steps learning_rate lr_scheduler_type warmup_ratio',
    'bf16 ddp_timeout resume_from_checkpoint num_train_epochs deepspeed run_name fsdp',
    'fsdp_transformer_layer_cls_to_wrap optim do_predict per_device_eval_batch_size predict_with_generate',
    'warmup_steps adam_beta1 adam_beta2 weight_decay max_grad_norm do_eval eval_strategy eval_steps',
    'save_strategy logging_dir logging_strategy save_total_limit fp16 gradient_checkpointing',
    'load_best_model_at_end metric_for_best_model ddp_find_unused_parameters generation_max_length',
    'generation_num_beams label_names remove_unused_columns fsdp_config accelerator_config project',
    'trackio_space_id hub_private_repo push_to_hub',
  ],
};

const every = Object.values(llamaFactoryKeys).flatMap((lines) => lines.flatMap((l) => l.split(' ')));

test('every LLaMA-Factory key is read by the schema or has a treatment', () => {
  assert.ok(every.length > 300);
  const missing = every.filter((k) => !(k in configShape) && !(k in foreignKeys));
  assert.deepEqual(missing, []);
  for (const [key, k] of Object.entries(foreignKeys)) {
    assert.ok(!(key in configShape), `${key} is both read and foreign`);
    assert.ok(Boolean(k.notice) !== Boolean(k.refuse), `${key}: one notice or one refusal`);
  }
});

test('a config with every foreign key at its default (or null) loads silently; other values notice or refuse', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmf-lf-keys-'));
  const file = path.join(dir, 'c.yaml');
  const defaults = Object.entries(foreignKeys).map(([k, v]) => `${k}: ${JSON.stringify(v.default)}`);
  writeFileSync(file, `model_name_or_path: m\nresume_from_checkpoint: null\n${defaults.join('\n')}\n`);
  const c = loadConfig(file);
  assert.equal(c.resume_from_checkpoint, undefined);
  assert.deepEqual(judgeForeignKey('dataloader_num_workers', 4), {
    kind: 'notice',
    line: 'dataloader_num_workers: data is tokenised ahead and cached; this setting has no effect',
  });
  writeFileSync(file, 'model_name_or_path: m\nstage: sft\nexport_quantization_bit: 4\n');
  assert.throws(
    () => loadConfig(file),
    (e: LmfError) =>
      e.code === 'unsupported_key' &&
      e.context.key === 'export_quantization_bit' &&
      e.context.row === 3 &&
      /quantized export/.test(e.message),
  );
});

test('fp16 is not silently ignored: it trains in bf16', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'lmf-lf-keys-'));
  const file = path.join(dir, 'c.yaml');
  writeFileSync(file, 'model_name_or_path: m\nfp16: true\n');
  assert.equal(loadConfig(file).bf16, true);
});
