/** Calls to the board's JSON API; a refusal comes back as an Error carrying the server's plain-words message. */
export type Args = Record<string, string | number | boolean | string[]>;

export async function api<T>(url: string, body?: unknown): Promise<T> {
  const res = await fetch(url, body === undefined ? {} : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const data = (await res.json().catch(() => ({}))) as { error?: string };
  if (!res.ok) throw new Error(data.error ?? `${res.status} ${res.statusText}`);
  return data as T;
}

export interface ModelInfo {
  architecture: string;
  modelType: string;
  parameters: number;
  dtype: string;
  layers: number;
  hidden: number;
  vocab: number;
  template: string;
  base: boolean;
}

export interface DatasetInfo {
  name: string;
  ranking: boolean;
  kto: boolean;
  formatting: string;
}

export interface JobInfo {
  id: string;
  kind: 'train' | 'eval' | 'export';
  outputDir: string;
  command: string[];
  status: 'running' | 'finished' | 'failed' | 'aborted';
  exitCode: number | null;
  startedAt: string;
  endedAt: string | null;
  error: string | null;
}

export interface LogRecord {
  current_steps: number;
  total_steps: number;
  loss?: number;
  eval_loss?: number;
  lr?: number;
  percentage: number;
  elapsed_time: string;
  remaining_time: string;
  tokens_per_s?: number;
  [key: string]: unknown;
}

export interface JobState {
  job: JobInfo | null;
  records: LogRecord[];
  logTail: string;
  results: Record<string, unknown> | null;
}

/** Keeps only the fields a user filled in. */
export function clean(args: Args): Args {
  return Object.fromEntries(Object.entries(args).filter(([, v]) => v !== '' && !(Array.isArray(v) && v.length === 0)));
}

/** Form values kept across reloads (per browser), so a reloaded page shows what was filled in. */
export function stored<T>(key: string, fallback: T): T {
  try {
    const raw = localStorage.getItem(`lmf-form-${key}`);
    return raw ? { ...fallback, ...(JSON.parse(raw) as T) } : fallback;
  } catch {
    return fallback;
  }
}

export function store(key: string, value: unknown): void {
  localStorage.setItem(`lmf-form-${key}`, JSON.stringify(value));
}
