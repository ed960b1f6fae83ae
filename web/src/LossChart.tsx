/** The live loss chart: raw loss, LLaMA-Factory's smoothed curve, and eval loss as points (uPlot). */
import { useContext, useEffect, useRef } from 'react';
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import type { LogRecord } from './api';
import { LangContext, useT } from './fields';

/** LLaMA-Factory's smoothing: weight 1.8 (sigmoid(0.05 N) - 0.5), an exponential moving average. */
export function smooth(values: number[]): number[] {
  if (!values.length) return [];
  const w = 1.8 * (1 / (1 + Math.exp(-0.05 * values.length)) - 0.5);
  let last = values[0];
  return values.map((v) => (last = last * w + (1 - w) * v));
}

export function LossChart({ records }: { records: LogRecord[] }) {
  const t = useT();
  const lang = useContext(LangContext);
  const box = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const steps = records.map((r) => r.current_steps);
  const loss = records.map((r) => (typeof r.loss === 'number' ? r.loss : null));
  const raw = loss.filter((v): v is number => v !== null);
  const sm = smooth(raw);
  let k = 0;
  const smoothed = loss.map((v) => (v === null ? null : sm[k++]));
  const evalLoss = records.map((r) => (typeof r.eval_loss === 'number' ? r.eval_loss : null));
  const data: uPlot.AlignedData = [steps, loss, smoothed, evalLoss];

  useEffect(() => {
    if (!box.current) return;
    plot.current = new uPlot(
      {
        width: Math.max(320, box.current.clientWidth),
        height: 260,
        scales: { x: { time: false } },
        axes: [{ label: t('step') }, { label: t('loss') }],
        series: [
          {},
          { label: t('loss'), stroke: '#9ab' },
          { label: t('smoothed'), stroke: '#1f6feb', width: 2 },
          { label: t('evalLoss'), stroke: '#d1242f', points: { show: true, size: 7 }, paths: () => null },
        ],
      },
      data,
      box.current,
    );
    return () => plot.current?.destroy();
  }, [lang]); // the labels are built in: a new language rebuilds the chart
  useEffect(() => {
    plot.current?.setData(data);
  }, [records]);
  return <div className="chart" ref={box} data-points={raw.length} />;
}
