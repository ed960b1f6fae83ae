/** The board: language switch and the model bar shared by every tab, then Train, Evaluate & Predict, Chat and Export. */
import { useEffect, useState } from 'react';
import { api, store, stored, type Args, type ModelInfo } from './api';
import { Choice, LangContext, Text, useT } from './fields';
import type { Lang } from './i18n';
import { useJob } from './job';
import { ChatTab, EvalTab, ExportTab } from './tabs';
import { TrainTab } from './TrainTab';

type Tab = 'train' | 'eval' | 'chat' | 'export';

function ModelBar({
  shared,
  set,
  suggest,
  templates,
}: {
  shared: Args;
  set: (k: string, v: Args[string]) => void;
  suggest: (template: string) => void;
  templates: string[];
}) {
  const t = useT();
  const [info, setInfo] = useState<ModelInfo | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    const path = String(shared.model_name_or_path ?? '');
    if (!path) return;
    const timer = setTimeout(() => {
      api<ModelInfo>(`/api/model?path=${encodeURIComponent(path)}`).then(
        (i) => {
          setInfo(i);
          setError('');
          suggest(i.template);
        },
        (e: Error) => {
          setInfo(null);
          setError(e.message);
        },
      );
    }, 300);
    return () => clearTimeout(timer);
  }, [shared.model_name_or_path]);
  return (
    <div className="modelbar">
      <Text label="model" name="model_name_or_path" args={shared} set={set} placeholder="saves/quickstart/pt" />
      <Text label="adapters" name="adapter_name_or_path" args={shared} set={set} />
      <Choice label="template" name="template" args={shared} set={set} options={['', ...templates]} />
      <Choice label="method" name="finetuning_type" args={shared} set={set} options={['lora', 'freeze', 'full']} />
      <Choice
        label="quantizationBit"
        name="quantization_bit"
        args={shared}
        set={(key, v) => set(key, v === '' ? '' : Number(v))}
        options={[['', t('none')], '8', '4']}
      />
      <div className="modelinfo" data-testid="model-info">
        {info &&
          t('modelInfo', {
            family: info.family,
            arch: info.architecture,
            params: `${(info.parameters / 1e6).toFixed(1)}M`,
            dtype: info.dtype,
            layers: info.layers,
          })}
        {info?.base && <em> · {t('baseModel')}</em>}
        {error && <span className="error">{error}</span>}
      </div>
    </div>
  );
}

export function App() {
  const [lang, setLang] = useState<Lang>(
    () => (localStorage.getItem('lmf-lang') as Lang | null) ?? (navigator.language.startsWith('zh') ? 'zh' : 'en'),
  );
  const [tab, setTab] = useState<Tab>('train');
  const [shared, setShared] = useState<Args>(() =>
    stored('shared', { model_name_or_path: '', adapter_name_or_path: '', template: '', finetuning_type: 'lora' }),
  );
  useEffect(() => store('shared', shared), [shared]);
  const [templates, setTemplates] = useState<string[]>([]);
  const [job, refresh] = useJob();
  useEffect(() => {
    api<{ templates: string[] }>('/api/info').then(
      (i) => setTemplates(i.templates),
      () => {},
    );
  }, []);
  useEffect(() => {
    localStorage.setItem('lmf-lang', lang);
    document.documentElement.lang = lang;
  }, [lang]);
  const set = (k: string, v: Args[string]) => setShared((s) => ({ ...s, [k]: v }));
  // the guessed template fills the field only while the user has not chosen one
  const suggest = (template: string) => setShared((s) => (s.template ? s : { ...s, template }));
  return (
    <LangContext.Provider value={lang}>
      <Shell lang={lang} setLang={setLang} tab={tab} setTab={setTab}>
        <ModelBar shared={shared} set={set} suggest={suggest} templates={templates} />
        <div hidden={tab !== 'train'} data-panel="train">
          <TrainTab shared={shared} job={job} refresh={refresh} />
        </div>
        <div hidden={tab !== 'eval'} data-panel="eval">
          <EvalTab shared={shared} job={job} refresh={refresh} />
        </div>
        <div hidden={tab !== 'chat'} data-panel="chat">
          <ChatTab shared={shared} />
        </div>
        <div hidden={tab !== 'export'} data-panel="export">
          <ExportTab shared={shared} job={job} refresh={refresh} />
        </div>
      </Shell>
    </LangContext.Provider>
  );
}

function Shell({
  lang,
  setLang,
  tab,
  setTab,
  children,
}: {
  lang: Lang;
  setLang: (l: Lang) => void;
  tab: Tab;
  setTab: (t: Tab) => void;
  children: React.ReactNode;
}) {
  const t = useT();
  const tabs: [Tab, Parameters<typeof t>[0]][] = [
    ['train', 'tabTrain'],
    ['eval', 'tabEval'],
    ['chat', 'tabChat'],
    ['export', 'tabExport'],
  ];
  return (
    <main>
      <header>
        <h1>{t('title')}</h1>
        <label className="lang">
          {t('language')}
          <select name="lang" value={lang} onChange={(e) => setLang(e.target.value as Lang)}>
            <option value="en">English</option>
            <option value="zh">中文</option>
          </select>
        </label>
      </header>
      <p className="welcome">{t('welcome')}</p>
      <nav>
        {tabs.map(([id, key]) => (
          <button key={id} type="button" role="tab" aria-selected={tab === id} data-tab={id} onClick={() => setTab(id)}>
            {t(key)}
          </button>
        ))}
      </nav>
      {children}
    </main>
  );
}
