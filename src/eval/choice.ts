/**
 * `lmf eval`: multiple-choice benchmarks in the layout LLaMA-Factory uses for MMLU, CMMLU and C-Eval, read
 * from local files. task = <name>_<split> (mmlu_test, cmmlu_test, ceval_validation); task_dir/<name>/ holds
 * mapping.json ({subject: {name, category}}) and one CSV per subject and split, in any of the three layouts:
 *   data/<split>/<subject>_<split>.csv (MMLU, no header: question, A, B, C, D, answer)
 *   <split>/<subject>_<split>.csv (C-Eval, header)   <split>/<subject>.csv (CMMLU, header)
 * with split directories dev (the few-shot examples), val and test. Each question gets n_shot examples of
 * its subject as earlier turns; the choice is the letter whose token has the highest logit after the prompt.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseCsv } from 'csv-parse/sync';
import { z } from 'zod';
import { LmfError } from '../errors.js';
import type { Message } from '../data/messages.js';
import type { InferenceModel } from '../infer/load.js';
import { noGrad } from '../tensor/autograd.js';
import { Rng } from '../tensor/random.js';
import { withScope } from '../tensor/tensor.js';

export const LETTERS = ['A', 'B', 'C', 'D'] as const;
type Letter = (typeof LETTERS)[number];

export interface Question {
  question: string;
  choices: Record<Letter, string>;
  answer: Letter;
}

export interface Subject {
  key: string;
  name: string;
  category: string;
  dev: Question[];
  questions: Question[];
}

const mappingSchema = z.record(z.string(), z.object({ name: z.string(), category: z.string() }));

const splitDir: Record<string, string> = { test: 'test', validation: 'val', val: 'val', dev: 'dev', train: 'dev' };

function subjectFile(root: string, subject: string, split: string): string | null {
  const dir = splitDir[split];
  const candidates = [
    path.join(root, 'data', dir, `${subject}_${dir}.csv`),
    path.join(root, dir, `${subject}_${dir}.csv`),
    path.join(root, dir, `${subject}.csv`),
  ];
  return candidates.find((f) => existsSync(f)) ?? null;
}

function readQuestions(file: string): Question[] {
  const rows = parseCsv(readFileSync(file, 'utf8'), { skip_empty_lines: true, relax_column_count: true }) as string[][];
  if (!rows.length) return [];
  const header = rows[0].map((h) => h.trim().toLowerCase());
  const named = header.includes('question') && header.includes('answer');
  const col = (name: string, position: number) => (named ? header.indexOf(name.toLowerCase()) : position);
  const at = {
    question: col('question', 0),
    A: col('A', 1),
    B: col('B', 2),
    C: col('C', 3),
    D: col('D', 4),
    answer: col('answer', 5),
  };
  return rows.slice(named ? 1 : 0).map((r, i) => {
    const answer = (r[at.answer] ?? '').trim().toUpperCase();
    if (!LETTERS.includes(answer as Letter)) {
      throw new LmfError('bad_eval_row', `the answer "${r[at.answer] ?? ''}" is not one of A, B, C, D`, {
        file,
        row: i + (named ? 2 : 1),
      });
    }
    return {
      question: r[at.question],
      choices: { A: r[at.A], B: r[at.B], C: r[at.C], D: r[at.D] },
      answer: answer as Letter,
    };
  });
}

/** The subjects of a task with their few-shot examples and questions. */
export function loadTask(taskDir: string, task: string): Subject[] {
  const m = /^(.+)_(test|validation|val|dev|train)$/.exec(task);
  if (!m)
    throw new LmfError('bad_task', `task "${task}" is not <name>_<split>`, {
      key: 'task',
      hint: 'for example mmlu_test, cmmlu_test or ceval_validation',
    });
  const [, name, split] = m;
  const root = path.join(taskDir, name);
  const mappingFile = path.join(root, 'mapping.json');
  if (!existsSync(mappingFile)) {
    throw new LmfError('task_missing', `no mapping.json for task "${name}"`, {
      file: mappingFile,
      hint: `unpack the benchmark into ${root} (mapping.json and its CSV folders)`,
    });
  }
  let mapping: z.infer<typeof mappingSchema>;
  try {
    mapping = mappingSchema.parse(JSON.parse(readFileSync(mappingFile, 'utf8')));
  } catch (err) {
    throw new LmfError(
      'bad_task',
      `mapping.json must map each subject to {"name", "category"} (${(err as Error).message.split('\n')[0]})`,
      { file: mappingFile },
    );
  }
  return Object.entries(mapping).map(([key, info]) => {
    const file = subjectFile(root, key, split);
    if (!file)
      throw new LmfError('task_missing', `no ${split} file for subject "${key}"`, {
        file: path.join(root, splitDir[split]),
      });
    const dev = subjectFile(root, key, 'dev');
    return {
      key,
      name: info.name,
      category: info.category,
      questions: readQuestions(file),
      dev: dev ? readQuestions(dev) : [],
    };
  });
}

const wording = {
  en: {
    system: (s: string) => `The following are multiple choice questions (with answers) about ${s}.\n\n`,
    answer: '\nAnswer:',
  },
  zh: { system: (s: string) => `以下是中国关于${s}考试的单项选择题，请选出其中的正确答案。\n\n`, answer: '\n答案：' },
};

function questionText(q: Question, lang: 'en' | 'zh'): string {
  return `${q.question}${LETTERS.map((l) => `\n${l}. ${q.choices[l]}`).join('')}${wording[lang].answer}`;
}

/** The few-shot conversation for one question: examples as earlier turns, the subject line before the first. */
export function fewShotMessages(subject: Subject, q: Question, shots: Question[], lang: 'en' | 'zh'): Message[] {
  const messages: Message[] = shots.flatMap((s) => [
    { role: 'user' as const, content: questionText(s, lang) },
    { role: 'assistant' as const, content: s.answer },
  ]);
  messages.push({ role: 'user', content: questionText(q, lang) });
  messages[0] = { ...messages[0], content: wording[lang].system(subject.name) + messages[0].content };
  return messages;
}

export interface SubjectResult {
  name: string;
  category: string;
  correct: number;
  total: number;
  accuracy: number;
  predictions: Letter[];
}

export interface ChoiceReport {
  subjects: Record<string, SubjectResult>;
  /** accuracy (percent) per category and "Average" over every question */
  scores: Record<string, number>;
}

export interface ChoiceOptions {
  nShot: number;
  lang: 'en' | 'zh';
  seed: number;
  batchSize: number;
  onSubject?: (key: string, done: number, total: number) => void;
}

export function evaluateChoices(m: InferenceModel, subjects: Subject[], o: ChoiceOptions): ChoiceReport {
  // the id of each letter as the answer's last token (LLaMA-Factory: encode(letter)[-1])
  const letterIds = LETTERS.map((l) => {
    const ids = m.tokenizer.encode(l);
    return ids[ids.length - 1];
  });
  const results: Record<string, SubjectResult> = {};
  subjects.forEach((subject, index) => {
    const rng = new Rng(o.seed + index);
    const prompts = subject.questions.map((q) => {
      const shots = rng.shuffle([...subject.dev]).slice(0, Math.min(o.nShot, subject.dev.length));
      return m.template.encodePrompt(m.tokenizer, fewShotMessages(subject, q, shots, o.lang));
    });
    const predictions: Letter[] = [];
    for (let start = 0; start < prompts.length; start += o.batchSize) {
      const batch = prompts.slice(start, start + o.batchSize);
      noGrad(() =>
        withScope(() => {
          const logits = m.model.extend(
            batch,
            batch.map(() => m.model.newCache()),
          );
          const V = logits.shape[1];
          batch.forEach((_, b) => {
            let best = 0;
            for (let k = 1; k < 4; k++)
              if (logits.data[b * V + letterIds[k]] > logits.data[b * V + letterIds[best]]) best = k;
            predictions.push(LETTERS[best]);
          });
        }),
      );
    }
    const correct = predictions.filter((p, i) => p === subject.questions[i].answer).length;
    results[subject.key] = {
      name: subject.name,
      category: subject.category,
      correct,
      total: predictions.length,
      accuracy: predictions.length ? correct / predictions.length : 0,
      predictions,
    };
    o.onSubject?.(subject.key, index + 1, subjects.length);
  });
  const scores: Record<string, number> = {};
  const sums = new Map<string, [number, number]>();
  for (const r of Object.values(results)) {
    for (const key of [r.category, 'Average']) {
      const [c, t] = sums.get(key) ?? [0, 0];
      sums.set(key, [c + r.correct, t + r.total]);
    }
  }
  for (const [key, [c, t]] of [...sums].sort(([a], [b]) =>
    a === 'Average' ? 1 : b === 'Average' ? -1 : a.localeCompare(b),
  ))
    scores[key] = t ? (100 * c) / t : 0;
  return { subjects: results, scores };
}

/** LLaMA-Factory's score lines: "{category:>15}: {accuracy:.2f}". */
export function scoreLines(scores: Record<string, number>): string {
  return Object.entries(scores)
    .map(([k, v]) => `${k.padStart(15)}: ${v.toFixed(2)}`)
    .join('\n');
}
