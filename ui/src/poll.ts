import { useEffect, useState } from 'preact/hooks';
import { api } from './api';

/**
 * GET `path` now and every `everyMs` while the tab is visible: the last answer or the error. `setData`
 * replaces the answer (after a save that returned it); `reload` reads again at once.
 */
export function usePolled<T>(path: string, everyMs = 5000) {
  const [data, setData] = useState<T | undefined>();
  const [error, setError] = useState('');
  const reload = async () => {
    try {
      setData(await api<T>('GET', path));
      setError('');
    } catch (e) {
      setError((e as Error).message);
    }
  };
  useEffect(() => {
    reload();
    const t = setInterval(() => !document.hidden && reload(), everyMs);
    return () => clearInterval(t);
  }, [path, everyMs]);
  return { data, setData, error, setError, reload };
}
