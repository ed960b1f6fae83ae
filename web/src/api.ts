/** Calls to the board's JSON API; a refusal comes back as an Error carrying the server's plain-words message. */
export type Args = Record<string, string | number | boolean | string[]>;

export async function api<T>(url: string, body?: unknown): Promise<T> {
  const res = await fetch(
    url,
    body === undefined
      ? {}
      : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) },
  );
  const data = (await res.json().catch(() => ({}))) as { error?: string };
  if (!res.ok) throw new Error(data.error ?? `${res.status} ${res.statusText}`);
  return data as T;
}

export type { DatasetInfo, JobInfo, JobState, LogRecord, ModelInfo } from '../../src/wire';

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
