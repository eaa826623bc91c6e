import { useEffect, useState } from 'preact/hooks';
import { api } from '../api';
import { useRoute } from '../route';
import { refreshAll, refreshCluster, setState, startLive, useStore } from '../store';
import { BackupsPage } from './BackupsPage';
import { ClusterPage } from './ClusterPage';
import { CreateVmDialog } from './CreateVmDialog';
import { Dashboard } from './Dashboard';
import { Events } from './Events';
import { HostPage } from './HostPage';
import { ImportDialog } from './ImportDialog';
import { Login } from './Login';
import { NetworksPage } from './NetworksPage';
import { RoutersPage } from './RoutersPage';
import { SecurityGroupsPage } from './SecurityGroupsPage';
import { StoragePage } from './StoragePage';
import { TasksPanel } from './TasksPanel';
import { Toasts } from './Toasts';
import { TopBar } from './TopBar';
import { TopologyPage } from './TopologyPage';
import { Tree } from './Tree';
import { VmList } from './VmList';
import { VmPage } from './VmPage';

export function App() {
  const s = useStore();
  const route = useRoute();
  const [creating, setCreating] = useState(false);
  const [importing, setImporting] = useState(false);

  useEffect(() => {
    api<{ user: string }>('GET', '/auth/whoami')
      .then((w) => setState({ user: w.user, checked: true }))
      .catch(() => setState({ checked: true }));
  }, []);
  useEffect(() => {
    if (!s.user) return;
    refreshAll().catch(() => {});
    refreshCluster().catch(() => {});
    startLive();
  }, [s.user]);

  if (!s.checked) return <div class="splash">Loading…</div>;
  if (!s.user)
    return (
      <>
        <Login />
        <Toasts />
      </>
    );
  return (
    <div class="shell">
      <TopBar onCreate={() => setCreating(true)} />
      <Tree route={route} />
      <main class="main">
        {route.view === 'dashboard' && <Dashboard />}
        {route.view === 'vms' && (
          <VmList onCreate={() => setCreating(true)} onImport={() => setImporting(true)} />
        )}
        {route.view === 'events' && <Events />}
        {route.view === 'vm' && <VmPage id={route.id!} tab={route.tab!} />}
        {route.view === 'host' && <HostPage name={route.id!} />}
        {route.view === 'cluster' && <ClusterPage />}
        {route.view === 'storage' && <StoragePage onImport={() => setImporting(true)} />}
        {route.view === 'networks' && <NetworksPage open={route.id} />}
        {route.view === 'routers' && <RoutersPage open={route.id} />}
        {route.view === 'security-groups' && <SecurityGroupsPage open={route.id} />}
        {route.view === 'topology' && <TopologyPage />}
        {route.view === 'backups' && <BackupsPage />}
      </main>
      <TasksPanel />
      {creating && <CreateVmDialog onClose={() => setCreating(false)} />}
      {importing && <ImportDialog onClose={() => setImporting(false)} />}
      <Toasts />
    </div>
  );
}
