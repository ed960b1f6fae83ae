/** Evaluate & Predict, Chat and Export: each builds a config of the same keys and drives the same command as the CLI. */
import { useEffect, useRef, useState } from 'react';
import { api, clean, type Args } from './api';
import { useDatasets, useRunner } from './hooks';
import { Choice, Num, Section, Text, useT } from './fields';
import { JobPanel, type JobView } from './job';

export function EvalTab({ shared, job, refresh }: { shared: Args; job: JobView; refresh: () => void }) {
  const t = useT();
  const [mode, setMode] = useState<'predict' | 'bench'>('predict');
  const [args, setArgs] = useState<Args>({
    dataset_dir: 'data',
    eval_dataset: '',
    cutoff_len: 1024,
    max_samples: 100,
    per_device_eval_batch_size: 4,
    max_new_tokens: 128,
    top_p: 0.7,
    temperature: 0.95,
    output_dir: 'saves/predict',
    task: 'mmlu_test',
    task_dir: 'evaluation',
    n_shot: 5,
    lang: 'en',
    save_dir: 'saves/eval',
  });
  const { message, run } = useRunner();
  const set = (key: string, value: Args[string]) => setArgs((a) => ({ ...a, [key]: value }));
  const datasets = useDatasets(String(args.dataset_dir));
  const start = () =>
    run(async () => {
      const base = {
        model_name_or_path: shared.model_name_or_path,
        adapter_name_or_path: shared.adapter_name_or_path,
        template: shared.template,
      };
      if (mode === 'predict') {
        const keys = [
          'dataset_dir',
          'eval_dataset',
          'cutoff_len',
          'max_samples',
          'per_device_eval_batch_size',
          'max_new_tokens',
          'top_p',
          'temperature',
          'output_dir',
        ];
        await api('/api/jobs', {
          kind: 'train',
          args: clean({ ...base, stage: 'sft', do_predict: true, predict_with_generate: true, ...pick(args, keys) }),
        });
      } else {
        await api('/api/jobs', {
          kind: 'eval',
          args: clean({
            ...base,
            ...pick(args, ['task', 'task_dir', 'n_shot', 'lang', 'save_dir']),
            batch_size: args.per_device_eval_batch_size,
          }),
        });
      }
      refresh();
    });
  return (
    <div className="tab">
      <Section title="evalMode">
        <label className="field">
          <span>{t('evalMode')}</span>
          <select name="eval-mode" value={mode} onChange={(e) => setMode(e.target.value as 'predict' | 'bench')}>
            <option value="predict">{t('predictMode')}</option>
            <option value="bench">{t('benchMode')}</option>
          </select>
        </label>
        <Num label="batchSize" name="per_device_eval_batch_size" args={args} set={set} step="1" />
      </Section>
      {mode === 'predict' ? (
        <Section title="predictMode">
          <Text label="datasetDir" name="dataset_dir" args={args} set={set} />
          <Choice
            label="datasets"
            name="eval_dataset"
            args={args}
            set={set}
            options={['', ...datasets.filter((d) => !d.ranking && !d.kto).map((d) => d.name)]}
          />
          <Num label="cutoff" name="cutoff_len" args={args} set={set} step="1" />
          <Num label="maxSamples" name="max_samples" args={args} set={set} step="1" />
          <Num label="maxNewTokens" name="max_new_tokens" args={args} set={set} step="1" />
          <Num label="topP" name="top_p" args={args} set={set} />
          <Num label="temperature" name="temperature" args={args} set={set} />
          <Text label="outputDir" name="output_dir" args={args} set={set} />
        </Section>
      ) : (
        <Section title="benchMode">
          <Text label="task" name="task" args={args} set={set} />
          <Text label="taskDir" name="task_dir" args={args} set={set} />
          <Num label="nShot" name="n_shot" args={args} set={set} step="1" />
          <Choice label="evalLang" name="lang" args={args} set={set} options={['en', 'zh']} />
          <Text label="saveDir" name="save_dir" args={args} set={set} />
        </Section>
      )}
      <div className="buttons">
        <button type="button" className="primary" disabled={job.job?.status === 'running'} onClick={start}>
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
      <JobPanel view={job} chart={false} />
    </div>
  );
}

function pick(a: Args, keys: string[]): Args {
  return Object.fromEntries(keys.filter((k) => k in a).map((k) => [k, a[k]]));
}

interface Turn {
  role: 'user' | 'assistant';
  content: string;
}

export function ChatTab({ shared }: { shared: Args }) {
  const t = useT();
  const [args, setArgs] = useState<Args>({ infer_dtype: 'auto', temperature: 0.95, top_p: 0.7, max_new_tokens: 256 });
  const [loaded, setLoaded] = useState<string | null>(null);
  const [system, setSystem] = useState('');
  const [input, setInput] = useState('');
  const [turns, setTurns] = useState<Turn[]>([]);
  const [busy, setBusy] = useState(false);
  const { message, run } = useRunner();
  const set = (key: string, value: Args[string]) => setArgs((a) => ({ ...a, [key]: value }));
  const end = useRef<HTMLDivElement>(null);
  useEffect(() => {
    api<{ model: string | null }>('/api/chat/status').then(
      (s) => setLoaded(s.model),
      () => {},
    );
  }, []);
  useEffect(() => {
    end.current?.scrollIntoView?.();
  }, [turns]);

  const send = () =>
    run(async () => {
      if (!input.trim() || busy) return;
      const history: Turn[] = [...turns, { role: 'user', content: input }];
      setTurns([...history, { role: 'assistant', content: '' }]);
      setInput('');
      setBusy(true);
      try {
        const res = await fetch('/api/chat', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            messages: [...(system ? [{ role: 'system', content: system }] : []), ...history],
            temperature: args.temperature,
            top_p: args.top_p,
            max_tokens: args.max_new_tokens,
          }),
        });
        if (!res.ok || !res.body)
          throw new Error(((await res.json().catch(() => ({}))) as { error?: string }).error ?? res.statusText);
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffer = '',
          answer = '';
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          const events = buffer.split('\n\n');
          buffer = events.pop() ?? '';
          for (const e of events) {
            const data = e.replace(/^data: /, '');
            if (data === '[DONE]') continue;
            const delta =
              (JSON.parse(data) as { choices: { delta: { content?: string } }[] }).choices[0]?.delta.content ?? '';
            answer += delta;
            setTurns([...history, { role: 'assistant', content: answer }]);
          }
        }
      } finally {
        setBusy(false);
      }
    });

  return (
    <div className="tab">
      <Section title="loadModel">
        <Choice label="inferDtype" name="infer_dtype" args={args} set={set} options={['auto', 'float32', 'bfloat16']} />
        <button
          type="button"
          className="primary"
          onClick={() =>
            run(async () => {
              const r = await api<{ model: string }>('/api/chat/load', {
                args: clean({
                  model_name_or_path: shared.model_name_or_path,
                  adapter_name_or_path: shared.adapter_name_or_path,
                  template: shared.template,
                  infer_dtype: args.infer_dtype,
                }),
              });
              setLoaded(r.model);
            })
          }
        >
          {t('loadModel')}
        </button>
        <button
          type="button"
          onClick={() =>
            run(async () => {
              await api('/api/chat/unload', {});
              setLoaded(null);
            })
          }
        >
          {t('unloadModel')}
        </button>
        <span className="loaded" data-loaded={loaded ?? ''}>
          {loaded ? t('loaded', { model: loaded }) : t('notLoaded')}
        </span>
      </Section>
      <Section title="temperature">
        <Num label="temperature" name="temperature" args={args} set={set} />
        <Num label="topP" name="top_p" args={args} set={set} />
        <Num label="maxNewTokens" name="max_new_tokens" args={args} set={set} step="1" />
        <label className="field wide">
          <span>{t('system')}</span>
          <input name="system" value={system} onChange={(e) => setSystem(e.target.value)} />
        </label>
      </Section>
      <div className="chat">
        {turns.map((m, i) => (
          <div key={i} className={`turn ${m.role}`}>
            <b>{m.role === 'user' ? t('you') : t('assistant')}</b>
            <p>{m.content}</p>
          </div>
        ))}
        <div ref={end} />
      </div>
      <div className="buttons">
        <input
          name="message"
          className="message"
          placeholder={t('message')}
          value={input}
          onChange={(e) => setInput(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === 'Enter') void send();
          }}
        />
        <button type="button" className="primary" disabled={!loaded || busy} onClick={() => void send()}>
          {t('send')}
        </button>
        <button type="button" onClick={() => setTurns([])}>
          {t('clear')}
        </button>
      </div>
      {message && <div className={message.kind}>{message.text}</div>}
    </div>
  );
}

export function ExportTab({ shared, job, refresh }: { shared: Args; job: JobView; refresh: () => void }) {
  const t = useT();
  const [args, setArgs] = useState<Args>({
    export_dir: 'saves/export',
    export_size: 5,
    infer_dtype: 'auto',
    export_gguf: '',
  });
  const { message, run } = useRunner();
  const set = (key: string, value: Args[string]) => setArgs((a) => ({ ...a, [key]: value }));
  return (
    <div className="tab">
      <Section title="tabExport">
        <Text label="exportDir" name="export_dir" args={args} set={set} />
        <Num label="exportSize" name="export_size" args={args} set={set} />
        <Choice
          label="exportDtype"
          name="infer_dtype"
          args={args}
          set={set}
          options={['auto', 'float32', 'bfloat16', 'float16']}
        />
        <Choice
          label="gguf"
          name="export_gguf"
          args={args}
          set={set}
          options={[['', t('none')], 'f16', 'bf16', 'q8_0', 'q4_0', 'q4_k_m']}
        />
      </Section>
      <div className="buttons">
        <button
          type="button"
          className="primary"
          disabled={job.job?.status === 'running'}
          onClick={() =>
            run(async () => {
              await api('/api/jobs', {
                kind: 'export',
                args: clean({
                  model_name_or_path: shared.model_name_or_path,
                  adapter_name_or_path: shared.adapter_name_or_path,
                  template: shared.template,
                  ...args,
                }),
              });
              refresh();
            })
          }
        >
          {t('exportBtn')}
        </button>
      </div>
      {message && <div className={message.kind}>{message.text}</div>}
      <JobPanel view={job} chart={false} />
    </div>
  );
}
