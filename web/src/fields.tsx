/** Small form controls that bind to one key of an argument object; labels come from the i18n table. */
import { createContext, useContext, type ReactNode } from 'react';
import { translate, type Key, type Lang } from './i18n';
import type { Args } from './api';

export const LangContext = createContext<Lang>('en');

export function useT(): (key: Key, vars?: Record<string, string | number>) => string {
  const lang = useContext(LangContext);
  return (key, vars) => translate(lang, key, vars);
}

interface Bound {
  args: Args;
  set: (key: string, value: Args[string]) => void;
}

export function Text({
  label,
  name,
  args,
  set,
  placeholder,
}: Bound & { label: Key; name: string; placeholder?: string }) {
  const t = useT();
  return (
    <label className="field">
      <span>{t(label)}</span>
      <input
        name={name}
        value={String(args[name] ?? '')}
        placeholder={placeholder}
        onChange={(e) => set(name, e.target.value)}
      />
    </label>
  );
}

export function Num({ label, name, args, set, step }: Bound & { label: Key; name: string; step?: string }) {
  const t = useT();
  return (
    <label className="field">
      <span>{t(label)}</span>
      <input
        name={name}
        type="number"
        step={step ?? 'any'}
        value={args[name] === undefined ? '' : String(args[name])}
        onChange={(e) => set(name, e.target.value === '' ? '' : Number(e.target.value))}
      />
    </label>
  );
}

export function Choice({
  label,
  name,
  args,
  set,
  options,
}: Bound & { label: Key; name: string; options: (string | [string, string])[] }) {
  const t = useT();
  return (
    <label className="field">
      <span>{t(label)}</span>
      <select name={name} value={String(args[name] ?? '')} onChange={(e) => set(name, e.target.value)}>
        {options.map((o) => {
          const [value, text] = Array.isArray(o) ? o : [o, o];
          return (
            <option key={value} value={value}>
              {text}
            </option>
          );
        })}
      </select>
    </label>
  );
}

export function Check({ label, name, args, set }: Bound & { label: Key; name: string }) {
  const t = useT();
  return (
    <label className="field check">
      <input name={name} type="checkbox" checked={args[name] === true} onChange={(e) => set(name, e.target.checked)} />
      <span>{t(label)}</span>
    </label>
  );
}

export function Section({ title, children }: { title: Key; children: ReactNode }) {
  const t = useT();
  return (
    <fieldset className="section">
      <legend>{t(title)}</legend>
      <div className="grid">{children}</div>
    </fieldset>
  );
}
