import { useEffect, useState } from 'preact/hooks';

/**
 * Hash routes: #/ (dashboard), #/vms, #/vms/<id>/<tab>, #/hosts/<name>, #/cluster, #/storage,
 * #/networks[/<name>] (one network's NICs open), #/routers[/<name>], #/security-groups[/<name>] (one
 * open), #/topology, #/backups, #/events.
 */
export interface Route {
  view:
    | 'dashboard'
    | 'vms'
    | 'vm'
    | 'host'
    | 'cluster'
    | 'storage'
    | 'networks'
    | 'routers'
    | 'security-groups'
    | 'topology'
    | 'backups'
    | 'events';
  id?: string;
  tab?: string;
}

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  if (parts[0] === 'vms' && parts[1]) return { view: 'vm', id: parts[1], tab: parts[2] ?? 'summary' };
  if (parts[0] === 'vms') return { view: 'vms' };
  if (parts[0] === 'hosts' && parts[1]) return { view: 'host', id: decodeURIComponent(parts[1]) };
  if (parts[0] === 'cluster') return { view: 'cluster' };
  if (parts[0] === 'events') return { view: 'events' };
  if (parts[0] === 'storage') return { view: 'storage' };
  if (parts[0] === 'networks')
    return parts[1] ? { view: 'networks', id: decodeURIComponent(parts[1]) } : { view: 'networks' };
  if (parts[0] === 'routers' || parts[0] === 'security-groups')
    return parts[1] ? { view: parts[0], id: decodeURIComponent(parts[1]) } : { view: parts[0] };
  if (parts[0] === 'topology') return { view: 'topology' };
  if (parts[0] === 'backups') return { view: 'backups' };
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

/** The hash of a host's page. */
export function hostHref(name: string): string {
  return `#/hosts/${encodeURIComponent(name)}`;
}
