/**
 * Named templates, spelled as LLaMA-Factory spells them so that a model trained there renders the same
 * here. The strings are the chat formats of the model families (the interface to match).
 */
import { LmfError } from '../../errors.js';
import { closest } from '../../util/closest.js';
import type { TextTokenizer } from '../tokenizer.js';
import { JinjaChatTemplate } from './jinja.js';
import { BOS, ChatTemplate, EOS, type TemplateSpec } from './template.js';

const base: Omit<TemplateSpec, 'name'> = {
  user: ['{{content}}'],
  assistant: ['{{content}}', EOS],
  system: ['{{content}}'],
  prefix: [],
  defaultSystem: '',
  stopWords: [],
  efficientEos: false,
  replaceEos: false,
  systemInFirstUser: false,
  reasoning: false,
  thoughtWords: ['<think>\n', '\n</think>\n\n'],
  toolFormat: 'default',
};

const chatmlUser = '<|im_start|>user\n{{content}}<|im_end|>\n<|im_start|>assistant\n';
const chatml = {
  user: [chatmlUser],
  assistant: ['{{content}}<|im_end|>\n'],
  system: ['<|im_start|>system\n{{content}}<|im_end|>\n'],
};
const qwenFamily: Partial<TemplateSpec> = {
  ...chatml,
  function: ['{{content}}<|im_end|>\n'],
  observation: ['<|im_start|>user\n<tool_response>\n{{content}}\n</tool_response><|im_end|>\n<|im_start|>assistant\n'],
  toolFormat: 'qwen',
  stopWords: ['<|im_end|>'],
  replaceEos: true,
};
// Qwen3.5: Qwen's chat format with its own tool syntax, and the tokenizer's EOS kept (no replace_eos)
const qwen35Family: Partial<TemplateSpec> = { ...qwenFamily, replaceEos: false, toolFormat: 'qwen3_5' };
const llama3User =
  '<|start_header_id|>user<|end_header_id|>\n\n{{content}}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n';

const specs: Record<string, Partial<TemplateSpec>> = {
  default: {
    user: ['Human: {{content}}', EOS, '\nAssistant:'],
    assistant: ['{{content}}', EOS, '\n'],
    system: ['System: {{content}}', EOS, '\n'],
  },
  empty: { assistant: ['{{content}}'] },
  // few-shot prompts for multiple-choice evaluation (lmf eval): turns separated by blank lines
  fewshot: { assistant: ['{{content}}\n\n'], efficientEos: true },
  alpaca: {
    user: ['### Instruction:\n{{content}}\n\n### Response:\n'],
    assistant: ['{{content}}', EOS, '\n\n'],
    defaultSystem:
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n',
  },
  vicuna: {
    user: ['USER: {{content}} ASSISTANT:'],
    defaultSystem:
      'A chat between a curious user and an artificial intelligence assistant. ' +
      "The assistant gives helpful, detailed, and polite answers to the user's questions.",
  },
  chatml: {
    ...chatml,
    observation: ['<|im_start|>tool\n{{content}}<|im_end|>\n<|im_start|>assistant\n'],
    stopWords: ['<|im_end|>', '<|im_start|>'],
    replaceEos: true,
  },
  qwen: { ...qwenFamily, defaultSystem: 'You are Qwen, created by Alibaba Cloud. You are a helpful assistant.' },
  qwen3: { ...qwenFamily, reasoning: true },
  qwen3_nothink: { ...qwenFamily },
  qwen3_5: { ...qwen35Family, reasoning: true },
  qwen3_5_nothink: { ...qwen35Family },
  llama2: {
    user: [BOS, '[INST] {{content}} [/INST]'],
    system: ['<<SYS>>\n{{content}}\n<</SYS>>\n\n'],
    systemInFirstUser: true,
  },
  llama3: {
    user: [llama3User],
    assistant: ['{{content}}<|eot_id|>'],
    system: ['<|start_header_id|>system<|end_header_id|>\n\n{{content}}<|eot_id|>'],
    function: ['{{content}}<|eot_id|>'],
    observation: [
      '<|start_header_id|>ipython<|end_header_id|>\n\n{{content}}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n',
    ],
    prefix: [BOS],
    stopWords: ['<|eot_id|>', '<|eom_id|>'],
    replaceEos: true,
  },
  mistral: {
    user: ['[INST] {{content}}[/INST]'],
    assistant: [' {{content}}', EOS],
    system: ['{{content}}\n\n'],
    function: ['[TOOL_CALLS] {{content}}', EOS],
    observation: ['[TOOL_RESULTS] {"content": {{content}}}[/TOOL_RESULTS]'],
    prefix: [BOS],
    systemInFirstUser: true,
  },
  gemma: {
    user: ['<start_of_turn>user\n{{content}}<end_of_turn>\n<start_of_turn>model\n'],
    assistant: ['{{content}}<end_of_turn>\n'],
    system: ['{{content}}\n\n'],
    observation: ['<start_of_turn>tool\n{{content}}<end_of_turn>\n<start_of_turn>model\n'],
    prefix: [BOS],
    stopWords: ['<end_of_turn>'],
    replaceEos: true,
    systemInFirstUser: true,
  },
  phi4: {
    user: ['<|im_start|>user<|im_sep|>{{content}}<|im_end|><|im_start|>assistant<|im_sep|>'],
    assistant: ['{{content}}<|im_end|>'],
    system: ['<|im_start|>system<|im_sep|>{{content}}<|im_end|>'],
    stopWords: ['<|im_end|>'],
    replaceEos: true,
  },
  phi4_mini: {
    user: ['<|user|>{{content}}<|end|><|assistant|>'],
    assistant: ['{{content}}<|end|>'],
    system: ['<|system|>{{content}}<|end|>'],
    stopWords: ['<|end|>'],
    replaceEos: true,
  },
  phi: {
    user: ['<|user|>\n{{content}}<|end|>\n<|assistant|>\n'],
    assistant: ['{{content}}<|end|>\n'],
    system: ['<|system|>\n{{content}}<|end|>\n'],
    stopWords: ['<|end|>'],
    replaceEos: true,
  },
  deepseek: {
    user: ['User: {{content}}\n\nAssistant:'],
    system: ['{{content}}\n\n'],
    prefix: [BOS],
  },
  zephyr: {
    user: ['<|user|>\n{{content}}', EOS, '<|assistant|>\n'],
    system: ['<|system|>\n{{content}}', EOS],
    defaultSystem: 'You are Zephyr, a helpful assistant.',
  },
  smollm: { ...chatml, stopWords: ['<|im_end|>'] },
  smollm2: {
    ...chatml,
    stopWords: ['<|im_end|>'],
    defaultSystem: 'You are a helpful AI assistant named SmolLM, trained by Hugging Face.',
  },
};
// LLaMA-Factory's gemma3 renders text as gemma does (it adds an image plugin, not a different format)
specs.gemma3 = specs.gemma;

export const templateNames = Object.keys(specs);

export function getTemplate(name: string): ChatTemplate {
  const spec = specs[name];
  if (!spec) {
    const near = closest(name, templateNames);
    throw new LmfError('unknown_template', `template "${name}" does not exist`, {
      key: 'template',
      hint: `${near ? `did you mean "${near}"? ` : ''}known templates: ${templateNames.join(', ')}; or leave it unset to use the tokenizer's chat_template`,
    });
  }
  const full = { ...base, ...spec, name };
  if (full.efficientEos) full.assistant = full.assistant.filter((s) => s !== EOS);
  return new ChatTemplate(full);
}

/** The named template, or the tokenizer's chat_template; pre-training needs none (documents are plain text). */
export function resolveTemplate(
  name: string | null | undefined,
  tok: TextTokenizer,
  stage?: string,
): ChatTemplate | JinjaChatTemplate {
  if (name) return getTemplate(name);
  return stage === 'pt' ? getTemplate('empty') : new JinjaChatTemplate(tok);
}
