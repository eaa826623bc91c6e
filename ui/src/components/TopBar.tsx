import { api } from '../api';
import { go } from '../route';
import { setState, stopLive, useStore } from '../store';

export function TopBar({ onCreate }: { onCreate: () => void }) {
  const s = useStore();
  async function logout() {
    await api('POST', '/auth/logout').catch(() => {});
    stopLive();
    setState({ user: undefined, vms: [], tasks: [], nodes: [], cluster: undefined });
    go('/');
  }
  return (
    <header class="topbar">
      <a class="brand" href="#/">
        NeuroFlow
      </a>
      <nav>
        <a href="#/">Dashboard</a>
        <a href="#/vms">Virtual machines</a>
        <a href="#/cluster">Cluster</a>
        <a href="#/storage">Storage</a>
        <a href="#/networks">Networks</a>
        <a href="#/backups">Backups</a>
        <a href="#/events">Events</a>
      </nav>
      <button type="button" class="primary" onClick={onCreate}>
        New VM
      </button>
      <span class="spacer" />
      <span class={`live ${s.live ? 'on' : 'off'}`} title="live updates">
        {s.live ? '● live' : '○ offline'}
      </span>
      <span class="user">{s.user}</span>
      <button type="button" onClick={logout}>
        Log out
      </button>
    </header>
  );
}
