import { useEffect, useState } from 'preact/hooks';

/** Hash routes: #/ (dashboard), #/vms, #/vms/<id>/<tab>, #/events. */
export interface Route {
  view: 'dashboard' | 'vms' | 'vm' | 'events';
  id?: string;
  tab?: string;
}

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  if (parts[0] === 'vms' && parts[1]) return { view: 'vm', id: parts[1], tab: parts[2] ?? 'summary' };
  if (parts[0] === 'vms') return { view: 'vms' };
  if (parts[0] === 'events') return { view: 'events' };
  return { view: 'dashboard' };
}

export function useRoute(): Route {
  const [route, setRoute] = useState(parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return route;
}

export function go(path: string): void {
  location.hash = path;
}
