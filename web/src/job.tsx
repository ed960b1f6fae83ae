/** The current job, polled once a second (a reloaded page picks it up again), and its panel. */
import { useEffect, useRef, useState } from 'react';
import { api, type JobInfo, type JobState, type LogRecord } from './api';
import { useT } from './fields';
import { LossChart } from './LossChart';

export interface JobView {
  job: JobInfo | null;
  records: LogRecord[];
  logTail: string;
  results: Record<string, unknown> | null;
}

export function useJob(): [JobView, () => void] {
  const [view, setView] = useState<JobView>({ job: null, records: [], logTail: '', results: null });
  const since = useRef({ id: '', count: 0 });
  const poll = async () => {
    const s = await api<JobState>(`/api/jobs/current?since=${since.current.count}`).catch(() => null);
    if (!s) return;
    setView((v) => {
      const same = s.job?.id === since.current.id;
      const records = same ? [...v.records, ...s.records] : s.records;
      since.current = { id: s.job?.id ?? '', count: same ? since.current.count + s.records.length : s.records.length };
      return { job: s.job, records, logTail: s.logTail, results: s.results };
    });
  };
  useEffect(() => {
    void poll();
    const timer = setInterval(() => void poll(), 1000);
    return () => clearInterval(timer);
  }, []);
  return [view, () => void poll()];
}

export function JobPanel({ view, chart }: { view: JobView; chart: boolean }) {
  const t = useT();
  const { job, records } = view;
  const last = [...records].reverse().find((r) => typeof r.loss === 'number') ?? records[records.length - 1];
  let status = t('idle');
  if (job?.status === 'running') {
    status = last
      ? t('running', {
          current: last.current_steps,
          total: last.total_steps,
          elapsed: last.elapsed_time,
          remaining: last.remaining_time,
        })
      : `${job.command.join(' ')} …`;
  } else if (job?.status === 'finished') status = t('finished');
  else if (job?.status === 'failed') status = t('failed', { code: job.exitCode ?? '?' });
  else if (job?.status === 'aborted') status = t('aborted');
  return (
    <div className="job">
      <div className="status" data-status={job?.status ?? 'idle'}>
        {status}
      </div>
      <progress max={100} value={job?.status === 'finished' ? 100 : (last?.percentage ?? 0)} />
      {last && (
        <div className="stats">
          {typeof last.loss === 'number' && (
            <span>
              {t('loss')}: {last.loss.toFixed(4)}
            </span>
          )}
          {typeof last.tokens_per_s === 'number' && (
            <span>
              {Math.round(last.tokens_per_s)} {t('tokensPerS')}
            </span>
          )}
          {typeof last.lr === 'number' && (
            <span>
              {t('lr')}: {last.lr.toExponential(2)}
            </span>
          )}
        </div>
      )}
      {job?.error && <pre className="error">{job.error}</pre>}
      {chart && records.length > 0 && <LossChart records={records} />}
      {view.results && (
        <details open>
          <summary>{t('results')}</summary>
          <pre className="results">{JSON.stringify(view.results, null, 2)}</pre>
        </details>
      )}
      <details open={job?.status === 'running'}>
        <summary>{t('log')}</summary>
        <pre className="log">{view.logTail}</pre>
      </details>
    </div>
  );
}
