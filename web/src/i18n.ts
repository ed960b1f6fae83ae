/** Every label of the page in English and Chinese; the choice is kept in localStorage. */
const en = {
  title: 'LMFactory Board', language: 'Language', model: 'Model folder', adapters: 'Adapter folders (comma-separated)', template: 'Chat template',
  method: 'Fine-tuning method', modelInfo: '{arch} · {params} parameters · {dtype} · {layers} layers', baseModel: 'no chat template: looks like a base model',
  tabTrain: 'Train', tabEval: 'Evaluate & Predict', tabChat: 'Chat', tabExport: 'Export',
  stage: 'Stage', stageSft: 'Supervised Fine-Tuning', stagePt: 'Pre-Training', stageRm: 'Reward Modeling', stageDpo: 'DPO / ORPO / SimPO', stageKto: 'KTO',
  datasetDir: 'Data folder', datasets: 'Datasets', previewData: 'Preview data', trainedMarked: 'Trained tokens are highlighted.',
  hyperparameters: 'Hyperparameters', learningRate: 'Learning rate', epochs: 'Epochs', maxSteps: 'Max steps (-1: by epochs)', batchSize: 'Batch size', gradAccum: 'Gradient accumulation',
  cutoff: 'Cutoff length', scheduler: 'LR scheduler', warmup: 'Warmup ratio', maxGradNorm: 'Max gradient norm', valSize: 'Validation size',
  loggingSteps: 'Logging steps', saveSteps: 'Save steps', evalSteps: 'Eval steps', bf16: 'bf16 matmuls', seed: 'Seed',
  lora: 'LoRA', loraRank: 'Rank', loraAlpha: 'Alpha', loraDropout: 'Dropout', loraTarget: 'Target modules',
  freeze: 'Freeze', freezeLayers: 'Trainable layers', freezeModules: 'Trainable modules', rlhf: 'Preference', prefBeta: 'Beta', prefLoss: 'Loss',
  outputDir: 'Output folder', previewYaml: 'Preview YAML and command', saveArgs: 'Save arguments', loadArgs: 'Load arguments', argsName: 'Name',
  start: 'Start', abort: 'Abort', running: 'Running {current}/{total}: {elapsed} < {remaining}', finished: 'Finished', failed: 'Failed (exit code {code})',
  aborted: 'Aborted (a checkpoint was saved)', idle: 'Ready', tokensPerS: 'tokens/s', lr: 'learning rate', log: 'Log', pastRuns: 'Past runs',
  loss: 'loss', smoothed: 'smoothed', evalLoss: 'eval loss', step: 'step',
  evalMode: 'Mode', predictMode: 'Predict (generate, BLEU and ROUGE)', benchMode: 'Multiple-choice benchmark (MMLU layout)',
  maxSamples: 'Max samples', maxNewTokens: 'Max new tokens', topP: 'Top-p', temperature: 'Temperature', task: 'Task', taskDir: 'Task folder',
  nShot: 'Few-shot examples', evalLang: 'Prompt language', saveDir: 'Results folder', results: 'Results',
  inferDtype: 'Inference dtype', loadModel: 'Load model', unloadModel: 'Unload model', loaded: 'Loaded: {model}', notLoaded: 'No model loaded',
  system: 'System prompt', message: 'Message', send: 'Send', clear: 'Clear history', you: 'You', assistant: 'Assistant',
  exportDir: 'Export folder', exportSize: 'Max shard size (GB)', exportDtype: 'Export dtype', gguf: 'GGUF file', none: 'none', exportBtn: 'Export',
  welcome: 'Pick a model folder, a dataset and a method, then press Start. Every run is an ordinary `lmf train` on the YAML shown by "Preview".',
};

type Dict = typeof en;

const zh: Dict = {
  title: 'LMFactory 看板', language: '语言', model: '模型目录', adapters: '适配器目录（逗号分隔）', template: '对话模板',
  method: '微调方法', modelInfo: '{arch} · {params} 参数 · {dtype} · {layers} 层', baseModel: '没有对话模板：看起来是基座模型',
  tabTrain: '训练', tabEval: '评估与预测', tabChat: '对话', tabExport: '导出',
  stage: '训练阶段', stageSft: '监督微调', stagePt: '预训练', stageRm: '奖励模型', stageDpo: 'DPO / ORPO / SimPO', stageKto: 'KTO',
  datasetDir: '数据目录', datasets: '数据集', previewData: '预览数据', trainedMarked: '高亮部分为参与训练的词元。',
  hyperparameters: '超参数', learningRate: '学习率', epochs: '训练轮数', maxSteps: '最大步数（-1：按轮数）', batchSize: '批大小', gradAccum: '梯度累积',
  cutoff: '截断长度', scheduler: '学习率调度', warmup: '预热比例', maxGradNorm: '最大梯度范数', valSize: '验证集比例',
  loggingSteps: '日志间隔', saveSteps: '保存间隔', evalSteps: '评估间隔', bf16: 'bf16 矩阵乘', seed: '随机种子',
  lora: 'LoRA', loraRank: '秩', loraAlpha: '缩放系数', loraDropout: '随机丢弃', loraTarget: '作用模块',
  freeze: '冻结', freezeLayers: '可训练层数', freezeModules: '可训练模块', rlhf: '偏好优化', prefBeta: 'Beta 参数', prefLoss: '损失类型',
  outputDir: '输出目录', previewYaml: '预览 YAML 与命令', saveArgs: '保存参数', loadArgs: '载入参数', argsName: '名称',
  start: '开始', abort: '中断', running: '运行中 {current}/{total}：{elapsed} < {remaining}', finished: '已完成', failed: '失败（退出码 {code}）',
  aborted: '已中断（已保存检查点）', idle: '就绪', tokensPerS: '词元/秒', lr: '学习率', log: '日志', pastRuns: '历史任务',
  loss: '损失', smoothed: '平滑', evalLoss: '验证损失', step: '步数',
  evalMode: '模式', predictMode: '预测（生成，BLEU 与 ROUGE）', benchMode: '选择题评测（MMLU 格式）',
  maxSamples: '最大样本数', maxNewTokens: '最大生成长度', topP: 'Top-p 采样', temperature: '温度系数', task: '评测任务', taskDir: '任务目录',
  nShot: '示例数量', evalLang: '提示语言', saveDir: '结果目录', results: '结果',
  inferDtype: '推理精度', loadModel: '加载模型', unloadModel: '卸载模型', loaded: '已加载：{model}', notLoaded: '未加载模型',
  system: '系统提示词', message: '消息', send: '发送', clear: '清空历史', you: '用户', assistant: '助手',
  exportDir: '导出目录', exportSize: '最大分块大小（GB）', exportDtype: '导出精度', gguf: 'GGUF 文件', none: '无', exportBtn: '开始导出',
  welcome: '选择模型目录、数据集和微调方法，然后点击“开始”。每次运行都是对“预览”中 YAML 的一次普通 `lmf train`。',
};

export type Lang = 'en' | 'zh';
export type Key = keyof Dict;
const dicts: Record<Lang, Dict> = { en, zh };

export function translate(lang: Lang, key: Key, vars: Record<string, string | number> = {}): string {
  return dicts[lang][key].replace(/\{(\w+)\}/g, (_, k: string) => String(vars[k] ?? ''));
}
