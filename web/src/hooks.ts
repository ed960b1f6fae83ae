/** State shared by the tabs: a runner that turns a failed request into a message, and the datasets of a folder. */
import { useEffect, useState } from 'react';
import { api, type DatasetInfo } from './api';

export type Notice = { kind: 'error' | 'info'; text: string } | null;

export function useRunner(): {
  message: Notice;
  say: (n: Notice) => void;
  run: (what: () => Promise<void>) => Promise<void>;
} {
  const [message, say] = useState<Notice>(null);
  const run = async (what: () => Promise<void>) => {
    say(null);
    try {
      await what();
    } catch (e) {
      say({ kind: 'error', text: (e as Error).message });
    }
  };
  return { message, say, run };
}

/** dataset_info.json of `dir`, read again when it changes; none (and `onError`) when it cannot be read. */
export function useDatasets(dir: string, onError?: (e: Error) => void): DatasetInfo[] {
  const [datasets, setDatasets] = useState<DatasetInfo[]>([]);
  useEffect(() => {
    api<DatasetInfo[]>(`/api/datasets?dir=${encodeURIComponent(dir)}`).then(setDatasets, (e: Error) => {
      setDatasets([]);
      onError?.(e);
    });
  }, [dir]);
  return datasets;
}
