import { useEffect, useState } from 'preact/hooks';
import { api } from './api';

/**
 * GET `path` now and every `intervalMs` while the tab is visible (the cluster page's DRS and HA cards).
 * `set` replaces the value (after a save that answered with it); `load` reads again at once.
 */
export function usePolled<T>(path: string, intervalMs: number) {
  const [value, set] = useState<T | undefined>();
  const [error, setError] = useState('');
  async function load() {
    try {
      set(await api<T>('GET', path));
      setError('');
    } catch (e) {
      setError((e as Error).message);
    }
  }
  useEffect(() => {
    load();
    const timer = setInterval(() => {
      if (!document.hidden) load();
    }, intervalMs);
    return () => clearInterval(timer);
  }, [path, intervalMs]);
  return { value, set, error, setError, load };
}
