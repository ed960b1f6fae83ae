/**
 * training_loss.png (and training_eval_loss.png) as LLaMA-Factory draws them with plot_loss: the logged
 * values and their exponential moving average against the step. Drawn as SVG, rendered to PNG by resvg.
 */
import { Resvg } from '@resvg/resvg-js';
import path from 'node:path';
import { writeAll, writeFileAtomic } from '../io/atomic.js';
import type { LogRecord } from './trainer-log.js';
import { maxOf, minOf } from '../util/arrays.js';

/** LLaMA-Factory's smoothing: an EMA whose weight grows with the number of points. */
export function smooth(values: number[]): number[] {
  if (!values.length) return [];
  const weight = 1.8 * (1 / (1 + Math.exp(-0.05 * values.length)) - 0.5);
  const out: number[] = [];
  let last = values[0];
  for (const v of values) {
    last = last * weight + (1 - weight) * v;
    out.push(last);
  }
  return out;
}

function niceTicks(lo: number, hi: number, count: number): number[] {
  const span = hi - lo || 1;
  const step = 10 ** Math.floor(Math.log10(span / count));
  const mult = [1, 2, 5, 10].find((m) => span / (step * m) <= count) ?? 10;
  const s = step * mult;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / s) * s; t <= hi + 1e-12; t += s) ticks.push(Number(t.toPrecision(6)));
  return ticks;
}

export function lossChartSvg(title: string, steps: number[], values: number[], label: string): string {
  const W = 800,
    H = 500,
    L = 70,
    R = 20,
    T = 50,
    B = 60;
  const xs = [minOf(steps), maxOf(steps)];
  const ys = [minOf(values), maxOf(values)];
  const pad = (ys[1] - ys[0]) * 0.05 || 0.5;
  const y0 = ys[0] - pad,
    y1 = ys[1] + pad;
  const px = (s: number) => L + ((s - xs[0]) / (xs[1] - xs[0] || 1)) * (W - L - R);
  const py = (v: number) => T + (1 - (v - y0) / (y1 - y0)) * (H - T - B);
  const line = (vs: number[]) => vs.map((v, i) => `${px(steps[i]).toFixed(1)},${py(v).toFixed(1)}`).join(' ');
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const text = (x: number, y: number, s: string, extra = '', size = 13) =>
    `<text x="${x}" y="${y}" font-family="DejaVu Sans, sans-serif" font-size="${size}" ${extra}>${esc(s)}</text>`;
  const xt = niceTicks(xs[0], xs[1], 8)
    .map(
      (t) =>
        `<line x1="${px(t)}" y1="${H - B}" x2="${px(t)}" y2="${H - B + 5}" stroke="#333"/>${text(px(t), H - B + 20, String(t), 'text-anchor="middle"')}`,
    )
    .join('');
  const yt = niceTicks(y0, y1, 6)
    .map(
      (t) =>
        `<line x1="${L - 5}" y1="${py(t)}" x2="${L}" y2="${py(t)}" stroke="#333"/><line x1="${L}" y1="${py(t)}" x2="${W - R}" y2="${py(t)}" stroke="#eee"/>${text(L - 8, py(t) + 4, String(t), 'text-anchor="end"')}`,
    )
    .join('');
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}"><rect width="100%" height="100%" fill="white"/>${yt}${xt}` +
    `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#333"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#333"/>` +
    `<polyline points="${line(values)}" fill="none" stroke="#1f77b4" stroke-opacity="0.4" stroke-width="1.5"/>` +
    `<polyline points="${line(smooth(values))}" fill="none" stroke="#1f77b4" stroke-width="2"/>` +
    `${text(W / 2, 28, title, 'text-anchor="middle"', 16)}${text(W / 2, H - 15, 'step', 'text-anchor="middle"')}` +
    `${text(18, (T + H - B) / 2, label, `text-anchor="middle" transform="rotate(-90 18 ${(T + H - B) / 2})"`)}` +
    `${text(W - R - 150, T + 15, 'original', 'fill="#1f77b4" fill-opacity="0.5"')}${text(W - R - 70, T + 15, 'smoothed', 'fill="#1f77b4"')}</svg>`
  );
}

function writePng(file: string, svg: string): void {
  const png = new Resvg(svg, { font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans' } }).render().asPng();
  writeFileAtomic(file, (fd) => writeAll(fd, png));
}

/** Writes the charts for the keys that have at least two points; returns the files written. */
export function plotLosses(outputDir: string, history: LogRecord[]): string[] {
  const written: string[] = [];
  for (const key of ['loss', 'eval_loss'] as const) {
    const points = history.filter((r) => typeof r[key] === 'number');
    if (points.length < 2) continue;
    const file = path.join(outputDir, key === 'loss' ? 'training_loss.png' : 'training_eval_loss.png');
    writePng(
      file,
      lossChartSvg(
        `training ${key} of ${outputDir}`,
        points.map((r) => r.current_steps),
        points.map((r) => r[key]!),
        key,
      ),
    );
    written.push(file);
  }
  return written;
}
