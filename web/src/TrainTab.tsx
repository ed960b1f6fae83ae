/** The Train tab: every option of `lmf train` the page offers, the data preview, YAML preview, saved arguments, start/abort. */
import { useEffect, useState } from 'react';
import { api, clean, store, stored, type Args, type DatasetInfo, type JobInfo } from './api';
import { Check, Choice, Num, Section, Text, useT } from './fields';
import { useDatasets, useRunner } from './hooks';
import { JobPanel, type JobView } from './job';
import { datasetFitsStage, prefLosses } from '../../src/wire';

export const trainDefaults: Args = {
  stage: 'sft',
  dataset_dir: 'data',
  learning_rate: 5e-5,
  num_train_epochs: 3,
  max_steps: -1,
  per_device_train_batch_size: 2,
  gradient_accumulation_steps: 8,
  cutoff_len: 2048,
  lr_scheduler_type: 'cosine',
  warmup_ratio: 0,
  max_grad_norm: 1,
  val_size: 0,
  logging_steps: 5,
  save_steps: 100,
  bf16: false,
  seed: 42,
  lora_rank: 8,
  lora_alpha: 16,
  lora_dropout: 0,
  lora_target: 'all',
  freeze_trainable_layers: 2,
  freeze_trainable_modules: 'all',
  pref_beta: 0.1,
  pref_loss: 'sigmoid',
  plot_loss: true,
};

function marked(text: string) {
  // `lmf data preview` marks trained tokens ⟦like this⟧
  return text
    .split(/(⟦[^⟧]*⟧)/g)
    .map((part, i) => (part.startsWith('⟦') ? <mark key={i}>{part.slice(1, -1)}</mark> : part));
}

export function TrainTab({ shared, job, refresh }: { shared: Args; job: JobView; refresh: () => void }) {
  const t = useT();
  const [args, setArgs] = useState<Args>(() =>
    stored('train', {
      ...trainDefaults,
      output_dir: `saves/train_${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}`,
    }),
  );
  useEffect(() => store('train', args), [args]);
  const [chosen, setChosen] = useState<string[]>(() => stored('datasets', { list: [] as string[] }).list);
  useEffect(() => store('datasets', { list: chosen }), [chosen]);
  const { message, say, run } = useRunner();
  const [preview, setPreview] = useState('');
  const [saved, setSaved] = useState<string[]>([]);
  const [history, setHistory] = useState<JobInfo[]>([]);
  const set = (key: string, value: Args[string]) => setArgs((a) => ({ ...a, [key]: value }));
  const datasets = useDatasets(String(args.dataset_dir), (e) => say({ kind: 'error', text: e.message }));

  useEffect(() => {
    api<string[]>('/api/args').then(setSaved, () => {});
    api<JobInfo[]>('/api/jobs').then(setHistory, () => {});
  }, [job.job?.status]);

  const stage = String(args.stage);
  const fits = (d: DatasetInfo) => datasetFitsStage(stage, d);
  const full = (): Args =>
    clean({ ...args, ...shared, dataset: chosen.filter((n) => datasets.some((d) => d.name === n && fits(d))) });
  const method = String(shared.finetuning_type);

  return (
    <div className="tab">
      <Section title="stage">
        <Choice
          label="stage"
          name="stage"
          args={args}
          set={set}
          options={[
            ['sft', t('stageSft')],
            ['pt', t('stagePt')],
            ['rm', t('stageRm')],
            ['dpo', t('stageDpo')],
            ['kto', t('stageKto')],
          ]}
        />
        <Text label="datasetDir" name="dataset_dir" args={args} set={set} />
        <div className="field wide">
          <span>{t('datasets')}</span>
          <div className="datasets">
            {datasets.filter(fits).map((d) => (
              <label key={d.name} className="check">
                <input
                  type="checkbox"
                  name={`dataset:${d.name}`}
                  checked={chosen.includes(d.name)}
                  onChange={(e) =>
                    setChosen((c) => (e.target.checked ? [...c, d.name] : c.filter((n) => n !== d.name)))
                  }
                />
                {d.name}
              </label>
            ))}
          </div>
        </div>
        <button
          type="button"
          onClick={() =>
            run(async () => setPreview((await api<{ text: string }>('/api/data-preview', { args: full() })).text))
          }
        >
          {t('previewData')}
        </button>
      </Section>
      {preview && (
        <div className="preview">
          <p>{t('trainedMarked')}</p>
          <pre>{marked(preview)}</pre>
        </div>
      )}
      <Section title="hyperparameters">
        <Num label="learningRate" name="learning_rate" args={args} set={set} />
        <Num label="epochs" name="num_train_epochs" args={args} set={set} />
        <Num label="maxSteps" name="max_steps" args={args} set={set} step="1" />
        <Num label="batchSize" name="per_device_train_batch_size" args={args} set={set} step="1" />
        <Num label="gradAccum" name="gradient_accumulation_steps" args={args} set={set} step="1" />
        <Num label="cutoff" name="cutoff_len" args={args} set={set} step="1" />
        <Choice
          label="scheduler"
          name="lr_scheduler_type"
          args={args}
          set={set}
          options={['linear', 'cosine', 'cosine_with_restarts', 'polynomial', 'constant', 'constant_with_warmup']}
        />
        <Num label="warmup" name="warmup_ratio" args={args} set={set} />
        <Num label="maxGradNorm" name="max_grad_norm" args={args} set={set} />
        <Num label="valSize" name="val_size" args={args} set={set} />
        <Num label="loggingSteps" name="logging_steps" args={args} set={set} step="1" />
        <Num label="saveSteps" name="save_steps" args={args} set={set} step="1" />
        <Num label="evalSteps" name="eval_steps" args={args} set={set} step="1" />
        <Num label="seed" name="seed" args={args} set={set} step="1" />
        <Check label="bf16" name="bf16" args={args} set={set} />
      </Section>
      {method === 'lora' && (
        <Section title="lora">
          <Num label="loraRank" name="lora_rank" args={args} set={set} step="1" />
          <Num label="loraAlpha" name="lora_alpha" args={args} set={set} />
          <Num label="loraDropout" name="lora_dropout" args={args} set={set} />
          <Text label="loraTarget" name="lora_target" args={args} set={set} />
        </Section>
      )}
      {method === 'freeze' && (
        <Section title="freeze">
          <Num label="freezeLayers" name="freeze_trainable_layers" args={args} set={set} step="1" />
          <Text label="freezeModules" name="freeze_trainable_modules" args={args} set={set} />
        </Section>
      )}
      {(stage === 'dpo' || stage === 'kto') && (
        <Section title="rlhf">
          <Num label="prefBeta" name="pref_beta" args={args} set={set} />
          {stage === 'dpo' && (
            <Choice label="prefLoss" name="pref_loss" args={args} set={set} options={[...prefLosses]} />
          )}
        </Section>
      )}
      <Section title="outputDir">
        <Text label="outputDir" name="output_dir" args={args} set={set} />
        <Text label="argsName" name="__name" args={args} set={set} />
        <button
          type="button"
          onClick={() =>
            run(async () => {
              await api('/api/args', { name: args.__name, args: { ...args, dataset: chosen } });
              setSaved(await api('/api/args'));
              say({ kind: 'info', text: `${t('saveArgs')}: ${String(args.__name)}` });
            })
          }
        >
          {t('saveArgs')}
        </button>
        <select
          name="load-args"
          value=""
          onChange={(e) =>
            run(async () => {
              const a = await api<Args>(`/api/args/${e.target.value}`);
              setChosen((a.dataset as string[]) ?? []);
              setArgs({ ...trainDefaults, ...a });
            })
          }
        >
          <option value="">{t('loadArgs')}…</option>
          {saved.map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
      </Section>
      <div className="buttons">
        <button
          type="button"
          onClick={() =>
            run(async () => {
              const r = await api<{ yaml: string; command: string }>('/api/yaml', {
                kind: 'train',
                args: stripName(full()),
              });
              setPreview(`# ${r.command}\n${r.yaml}`);
            })
          }
        >
          {t('previewYaml')}
        </button>
        <button
          type="button"
          className="primary"
          disabled={job.job?.status === 'running'}
          onClick={() =>
            run(async () => {
              await api('/api/jobs', { kind: 'train', args: stripName(full()) });
              refresh();
            })
          }
        >
          {t('start')}
        </button>
        <button
          type="button"
          disabled={job.job?.status !== 'running'}
          onClick={() =>
            run(async () => {
              await api('/api/jobs/abort', {});
            })
          }
        >
          {t('abort')}
        </button>
      </div>
      {message && <div className={message.kind}>{message.text}</div>}
      <JobPanel view={job} chart />
      {history.length > 0 && (
        <details>
          <summary>{t('pastRuns')}</summary>
          <ul className="history">
            {history.map((h) => (
              <li key={h.id}>
                {h.id} · {h.status} · {h.outputDir}
              </li>
            ))}
          </ul>
        </details>
      )}
    </div>
  );
}

function stripName(a: Args): Args {
  const { __name: _, ...rest } = a;
  return rest;
}
