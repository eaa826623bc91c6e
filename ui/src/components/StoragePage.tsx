import { useEffect, useState } from 'preact/hooks';
import { api, fmtBytes, type Image } from '../api';
import { usePolled } from '../poll';
import { hostHref } from '../route';
import { toast, useStore } from '../store';
import { ConfirmDialog } from './ConfirmDialog';
import { Meter } from './Meter';

interface Pool {
  name: string;
  type: string;
  capabilities: {
    shared: boolean;
    thin: boolean;
    snapshots: boolean;
    linkedClones: boolean;
    liveResize: boolean;
  };
  totalBytes: number;
  freeBytes: number;
  hosts: { name: string; totalBytes: number; freeBytes: number }[];
  rbd?: { pool: string; monitors: string[]; user: string };
  description?: string;
  vms: number;
}

interface Volume {
  name: string;
  virtualBytes: number;
  allocatedBytes: number;
  parent?: string;
  snapshots: string[];
}

/**
 * Storage: pools with capacity and the hosts that reach them, their volumes; add or remove a Ceph pool;
 * import a VM from VMware (its disks go into a pool).
 */
export function StoragePage({ onImport }: { onImport: () => void }) {
  const { data: pools, error, reload: load } = usePolled<Pool[]>('/pools');
  const [open, setOpen] = useState<string | undefined>();
  const [remove, setRemove] = useState<{ name: string; error?: string; busy?: boolean } | undefined>();

  async function confirmRemove() {
    if (!remove) return;
    setRemove({ ...remove, busy: true });
    try {
      await api('DELETE', `/pools/${encodeURIComponent(remove.name)}`);
      toast(`pool ${remove.name} removed`, 'info');
      setRemove(undefined);
      if (open === remove.name) setOpen(undefined);
      await load();
    } catch (e) {
      setRemove({ ...remove, busy: false, error: (e as Error).message });
    }
  }

  return (
    <div class="storage-page">
      <div class="vm-head">
        <h2>Storage</h2>
        <button type="button" data-action="import" onClick={onImport}>
          Import from VMware…
        </button>
      </div>
      {error && <div class="form-error">{error}</div>}
      {!pools && !error && <div class="muted">Loading…</div>}
      {pools && (
        <table class="grid pools">
          <thead>
            <tr>
              <th>Pool</th>
              <th>Type</th>
              <th>Scope</th>
              <th>Capacity</th>
              <th>Hosts</th>
              <th>VMs</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {pools.map((p) => (
              <tr key={p.name} data-pool={p.name}>
                <td>
                  <button
                    type="button"
                    class="link"
                    onClick={() => setOpen(open === p.name ? undefined : p.name)}
                  >
                    {p.name}
                  </button>
                  {p.rbd && <div class="muted mono">ceph: {p.rbd.pool}</div>}
                </td>
                <td>{p.type}</td>
                <td>{p.capabilities.shared ? 'shared' : 'per host'}</td>
                <td class="mem-cell">
                  {p.totalBytes > 0 ? (
                    <>
                      {fmtBytes(p.totalBytes - p.freeBytes)} used of {fmtBytes(p.totalBytes)}
                      <Meter value={(p.totalBytes - p.freeBytes) / p.totalBytes} warn={0.8} />
                    </>
                  ) : (
                    <span class="muted">not reported yet</span>
                  )}
                </td>
                <td>
                  {p.hosts.length === 0 ? (
                    <span class="muted">none reach it</span>
                  ) : (
                    p.hosts.map((h, i) => (
                      <>
                        {i > 0 && ', '}
                        <a href={hostHref(h.name)}>{h.name}</a>
                      </>
                    ))
                  )}
                </td>
                <td>{p.vms}</td>
                <td>
                  {p.capabilities.shared && (
                    <button
                      type="button"
                      data-action="remove-pool"
                      onClick={() => setRemove({ name: p.name })}
                    >
                      Remove
                    </button>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {open && pools?.some((p) => p.name === open) && <Volumes pool={pools.find((p) => p.name === open)!} />}
      <ImagesCard pools={pools ?? []} />
      <CephCard onChange={load} />
      <AddCephPool onAdded={load} />
      {remove && (
        <ConfirmDialog
          title={`Remove pool ${remove.name}?`}
          confirm="Remove"
          onConfirm={confirmRemove}
          onCancel={() => setRemove(undefined)}
          error={remove.error}
          busy={remove.busy}
        >
          NeuroFlow stops using the pool; the Ceph pool and its images stay. It is refused while VMs or
          volumes are in it.
        </ConfirmDialog>
      )}
    </div>
  );
}

/**
 * ISOs and disk images: where each lives (a host's pool, or a shared pool every host clones from); copy
 * a disk image into a shared pool; delete one (refused while VMs use it).
 */
function ImagesCard({ pools }: { pools: Pool[] }) {
  const { data: images, error: loadError, reload } = usePolled<Image[]>('/images', 10_000);
  const [copy, setCopy] = useState<{ id: string; pool: string } | undefined>();
  const [busy, setBusy] = useState('');
  const [error, setError] = useState('');
  const [remove, setRemove] = useState<Image | undefined>();
  const shared = pools.filter((p) => p.capabilities.shared && p.capabilities.linkedClones).map((p) => p.name);
  async function doCopy(img: Image) {
    if (!copy) return;
    setBusy(img.id);
    setError('');
    try {
      const made = await api<Image>('POST', `/images/${img.id}/copy`, { pool: copy.pool });
      toast(`image ${made.name} is in pool ${copy.pool}: VMs on every host can use it`, 'info');
      setCopy(undefined);
      await reload();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy('');
    }
  }
  async function doRemove() {
    if (!remove) return;
    try {
      await api('DELETE', `/images/${remove.id}`);
      toast(`image ${remove.name} deleted`, 'info');
      setRemove(undefined);
      await reload();
    } catch (e) {
      setError((e as Error).message);
      setRemove(undefined);
    }
  }
  return (
    <div class="card section images-card">
      <h3>Images</h3>
      {(error || loadError) && (
        <div class="form-error" role="alert">
          {error || loadError}
        </div>
      )}
      {images && images.length === 0 && (
        <p class="muted">No images yet: neuroflow image import NAME PATH, or image upload NAME FILE.</p>
      )}
      {images && images.length > 0 && (
        <table class="grid images">
          <thead>
            <tr>
              <th>Image</th>
              <th>Kind</th>
              <th>Pool</th>
              <th>Size</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {images.map((img) => (
              <tr data-image={img.name}>
                <td>{img.name}</td>
                <td>
                  {img.kind} <span class="muted">{img.format}</span>
                </td>
                <td>
                  {img.pool}{' '}
                  <span class="muted">{img.shared ? '(every host)' : img.node ? `on ${img.node}` : ''}</span>
                </td>
                <td>{fmtBytes(img.virtualSizeBytes || img.sizeBytes)}</td>
                <td class="row-actions">
                  {img.kind === 'disk' && !img.shared && shared.length > 0 && copy?.id !== img.id && (
                    <button
                      type="button"
                      data-action="copy-image"
                      onClick={() => setCopy({ id: img.id, pool: shared[0]! })}
                    >
                      Copy to pool…
                    </button>
                  )}
                  {copy?.id === img.id && (
                    <span class="inline-form copy-image-form">
                      <select
                        name="pool"
                        value={copy.pool}
                        onChange={(e) => setCopy({ ...copy, pool: (e.target as HTMLSelectElement).value })}
                      >
                        {shared.map((p) => (
                          <option value={p}>{p}</option>
                        ))}
                      </select>{' '}
                      <button
                        type="button"
                        class="primary"
                        disabled={busy === img.id}
                        onClick={() => doCopy(img)}
                      >
                        {busy === img.id ? 'Copying…' : 'Copy'}
                      </button>{' '}
                      <button type="button" onClick={() => setCopy(undefined)}>
                        Cancel
                      </button>
                    </span>
                  )}{' '}
                  <button type="button" data-action="delete-image" onClick={() => setRemove(img)}>
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {remove && (
        <ConfirmDialog
          title={`Delete image ${remove.name}?`}
          confirm="Delete"
          onConfirm={doRemove}
          onCancel={() => setRemove(undefined)}
        >
          The image goes for good. It is refused while a VM's disk is a clone of it.
        </ConfirmDialog>
      )}
    </div>
  );
}

function Volumes({ pool }: { pool: Pool }) {
  const [volumes, setVolumes] = useState<Volume[] | undefined>();
  const [error, setError] = useState('');
  const [node, setNode] = useState(pool.capabilities.shared ? '' : (pool.hosts[0]?.name ?? ''));
  useEffect(() => {
    setVolumes(undefined);
    const q = node ? `?node=${encodeURIComponent(node)}` : '';
    api<Volume[]>('GET', `/pools/${encodeURIComponent(pool.name)}/volumes${q}`)
      .then((v) => {
        setVolumes(v);
        setError('');
      })
      .catch((e) => setError((e as Error).message));
  }, [pool.name, node]);
  return (
    <div class="card section volumes" data-volumes={pool.name}>
      <h3>
        Volumes in {pool.name}
        {!pool.capabilities.shared && pool.hosts.length > 1 && (
          <select value={node} onChange={(e) => setNode((e.target as HTMLSelectElement).value)}>
            {pool.hosts.map((h) => (
              <option value={h.name}>{h.name}</option>
            ))}
          </select>
        )}
      </h3>
      {error && <div class="form-error">{error}</div>}
      {volumes && volumes.length === 0 && <div class="muted">No volumes.</div>}
      {volumes && volumes.length > 0 && (
        <table class="grid">
          <thead>
            <tr>
              <th>Volume</th>
              <th>Size</th>
              <th>Allocated</th>
              <th>Parent</th>
              <th>Snapshots</th>
            </tr>
          </thead>
          <tbody>
            {volumes.map((v) => (
              <tr key={v.name} data-volume={v.name}>
                <td class="mono">{v.name}</td>
                <td>{fmtBytes(v.virtualBytes)}</td>
                <td>{fmtBytes(v.allocatedBytes)}</td>
                <td class="mono">{v.parent ?? ''}</td>
                <td>{v.snapshots.join(', ')}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

/** Adds an existing Ceph pool: its monitors, user and key are tried by the API before anything is kept. */
function AddCephPool({ onAdded }: { onAdded: () => Promise<void> }) {
  const [f, setF] = useState({ name: '', pool: 'rbd', monitors: '', user: '', key: '' });
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const set = (k: keyof typeof f) => (e: Event) => setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await api('POST', '/pools', {
        name: f.name,
        type: 'rbd',
        pool: f.pool,
        monitors: f.monitors
          .split(/[\s,]+/)
          .map((m) => m.trim())
          .filter(Boolean),
        user: f.user,
        key: f.key,
      });
      toast(`pool ${f.name} added`, 'info');
      setF({ name: '', pool: 'rbd', monitors: '', user: '', key: '' });
      await onAdded();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <form class="card form add-pool" noValidate onSubmit={submit}>
      <h3>Add an existing Ceph pool</h3>
      <label>
        Name in NeuroFlow
        <input name="name" value={f.name} onInput={set('name')} placeholder="ceph" />
      </label>
      <label>
        Ceph pool
        <input name="pool" value={f.pool} onInput={set('pool')} />
      </label>
      <label>
        Monitors
        <input
          name="monitors"
          value={f.monitors}
          onInput={set('monitors')}
          placeholder="10.0.0.1, 10.0.0.2"
        />
      </label>
      <label>
        cephx user
        <input name="user" value={f.user} onInput={set('user')} placeholder="neuroflow (without client.)" />
      </label>
      <label>
        Key
        <input name="key" type="password" autocomplete="off" value={f.key} onInput={set('key')} />
        <span class="hint">ceph auth get-key client.USER; stored, never shown again</span>
      </label>
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
      <div>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Checking…' : 'Add pool'}
        </button>
      </div>
    </form>
  );
}

interface CephStatus {
  configured: boolean;
  fsid?: string;
  state?: 'bootstrapping' | 'ready';
  health?: {
    status: string;
    checks: { name: string; severity: string; summary: string }[];
    mons: { total: number; inQuorum: string[] };
    osds: { total: number; up: number; in: number };
    pgs: { total: number; byState: Record<string, number> };
    recovery?: { degradedRatio: number; misplacedRatio: number; bytesPerSec: number; objectsPerSec: number };
  };
  error?: string;
  monitors: { name: string; ip: string; inQuorum: boolean }[];
  osds: { id: number; node: string; device: string; up?: boolean; in?: boolean }[];
  daemons: { host: string; entity: string; pid?: number; restarts: number }[];
  unreachableHosts: string[];
  pool?: { name: string; size: number; minSize: number; warning?: string };
}

/** The integrated Ceph cluster: health, monitors, OSDs and daemons per host; set it up; add OSDs and monitors. */
function CephCard({ onChange }: { onChange: () => Promise<void> }) {
  const s = useStore();
  const polled = usePolled<CephStatus>('/ceph');
  const [done, setSt] = useState<CephStatus | undefined>();
  const st = done ?? polled.data;
  const [failed, setError] = useState('');
  const error = failed || polled.error;
  const [busy, setBusy] = useState('');
  const controllers = s.nodes.filter((n) => n.role === 'controller').map((n) => n.name);
  const [boot, setBoot] = useState({
    size: '3',
    minSize: '2',
    monitorAddress: '',
    failureDomain: 'host',
    monitors: undefined as string[] | undefined,
  });
  const monitors = boot.monitors ?? controllers.slice(0, 3);
  const [osd, setOsd] = useState({ node: '', device: '', sizeGiB: '' });
  const [monNode, setMonNode] = useState('');
  async function run(what: string, fn: () => Promise<CephStatus>) {
    setBusy(what);
    setError('');
    try {
      setSt(await fn());
      await Promise.all([onChange(), polled.reload()]);
      setSt(undefined);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy('');
    }
  }
  const bootstrap = (e: Event) => {
    e.preventDefault();
    const body: Record<string, unknown> = {
      size: Number(boot.size),
      minSize: Number(boot.minSize),
      failureDomain: boot.failureDomain,
    };
    if (monitors.length > 0) body.monitors = monitors;
    if (boot.monitorAddress && monitors.length === 1) body.monitorAddress = boot.monitorAddress;
    return run('bootstrap', () => api<CephStatus>('POST', '/ceph', body));
  };
  const addOsd = (e: Event) => {
    e.preventDefault();
    const body: Record<string, unknown> = { node: osd.node || s.nodes[0]?.name, device: osd.device };
    if (osd.sizeGiB) body.sizeGiB = Number(osd.sizeGiB);
    return run('osd', () => api<CephStatus>('POST', '/ceph/osds', body));
  };
  const monCandidates = s.nodes.map((n) => n.name).filter((n) => !st?.monitors.some((m) => m.name === n));
  const addMon = (e: Event) => {
    e.preventDefault();
    const node = monNode || monCandidates[0];
    if (!node) return;
    return run('mon', () => api<CephStatus>('POST', '/ceph/mons', { node }));
  };
  const toggleMon = (name: string, on: boolean) =>
    setBoot({ ...boot, monitors: on ? [...monitors, name] : monitors.filter((m) => m !== name) });
  const h = st?.health;
  const clean = h ? (h.pgs.byState['active+clean'] ?? 0) : 0;
  const hosts = [...new Set(st?.daemons.map((d) => d.host) ?? [])];
  return (
    <div class="card section ceph-card">
      <h3>Integrated Ceph</h3>
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
      {st && !st.configured && (
        <form class="form ceph-bootstrap" noValidate onSubmit={bootstrap}>
          <p class="muted">
            Not set up. NeuroFlow can run Ceph on its hosts (monitors and managers on up to three controllers,
            then OSDs on the disks of any host) and offer it as the shared pool <span class="mono">ceph</span>
            .
          </p>
          <fieldset class="ceph-monitors">
            <legend>Monitor hosts</legend>
            {s.nodes.map((n) => (
              <label class="check">
                <input
                  type="checkbox"
                  name={`mon-${n.name}`}
                  checked={monitors.includes(n.name)}
                  onChange={(e) => toggleMon(n.name, (e.target as HTMLInputElement).checked)}
                />
                {n.name} <span class="muted">{n.role}</span>
              </label>
            ))}
            <span class="hint">An odd number: 3 keep a quorum when one host fails</span>
          </fieldset>
          <label>
            Copies of every block
            <input
              name="size"
              type="number"
              min="1"
              max="10"
              value={boot.size}
              onInput={(e) => setBoot({ ...boot, size: (e.target as HTMLInputElement).value })}
            />
            <span class="hint">3 for a real cluster; 1 keeps a single copy (a failed disk loses data)</span>
          </label>
          <label>
            Copies needed for I/O
            <input
              name="minSize"
              type="number"
              min="1"
              max="10"
              value={boot.minSize}
              onInput={(e) => setBoot({ ...boot, minSize: (e.target as HTMLInputElement).value })}
            />
          </label>
          <label>
            Copies go to different
            <select
              name="failureDomain"
              value={boot.failureDomain}
              onChange={(e) => setBoot({ ...boot, failureDomain: (e.target as HTMLSelectElement).value })}
            >
              <option value="host">hosts (survives a host failing)</option>
              <option value="osd">disks only (one host may hold every copy)</option>
            </select>
          </label>
          {monitors.length === 1 && (
            <label>
              Monitor address
              <input
                name="monitorAddress"
                value={boot.monitorAddress}
                placeholder="the host's address"
                onInput={(e) => setBoot({ ...boot, monitorAddress: (e.target as HTMLInputElement).value })}
              />
            </label>
          )}
          <button type="submit" class="primary" disabled={!!busy || monitors.length === 0}>
            {busy === 'bootstrap' ? 'Setting up…' : `Set up Ceph on ${monitors.join(', ') || '…'}`}
          </button>
        </form>
      )}
      {st?.configured && !h && st.error && <div class="warning-text">{st.error}</div>}
      {st?.configured && h && (
        <dl class="ceph-health">
          <dt>Health</dt>
          <dd class={`health ${h.status}`}>{h.status}</dd>
          {h.checks.map((c) => (
            <>
              <dt>{c.name}</dt>
              <dd class="muted">{c.summary}</dd>
            </>
          ))}
          <dt>Monitors</dt>
          <dd>
            {h.mons.inQuorum.length} of {h.mons.total} in quorum
          </dd>
          <dt>OSDs</dt>
          <dd class="osds">
            {h.osds.up} up, {h.osds.in} in, of {h.osds.total}
          </dd>
          <dt>Placement groups</dt>
          <dd>
            {clean} of {h.pgs.total} active+clean
            {h.pgs.total > 0 && <Meter value={clean / h.pgs.total} warn={2} />}
          </dd>
          {h.recovery && (
            <>
              <dt>Recovery</dt>
              <dd class="recovery">
                {(h.recovery.degradedRatio * 100).toFixed(1)}% of objects degraded
                {h.recovery.misplacedRatio > 0 &&
                  `, ${(h.recovery.misplacedRatio * 100).toFixed(1)}% misplaced`}
                {h.recovery.bytesPerSec > 0 && `, recovering at ${fmtBytes(h.recovery.bytesPerSec)}/s`}
              </dd>
            </>
          )}
          {st.pool && (
            <>
              <dt>Replicas</dt>
              <dd>
                {st.pool.size} (I/O needs {st.pool.minSize})
                {st.pool.warning && <div class="warning-text">{st.pool.warning}</div>}
              </dd>
            </>
          )}
        </dl>
      )}
      {st?.configured && (
        <>
          <table class="table ceph-daemons">
            <thead>
              <tr>
                <th>Host</th>
                <th>Monitor</th>
                <th>OSDs</th>
                <th>Daemons</th>
              </tr>
            </thead>
            <tbody>
              {[...new Set([...st.monitors.map((m) => m.name), ...st.osds.map((o) => o.node), ...hosts])]
                .sort()
                .map((host) => {
                  const mon = st.monitors.find((m) => m.name === host);
                  return (
                    <tr data-host={host}>
                      <td>{host}</td>
                      <td>{mon ? `${mon.ip} ${mon.inQuorum ? '(in quorum)' : '(out of quorum)'}` : '—'}</td>
                      <td class="mono">
                        {st.osds
                          .filter((o) => o.node === host)
                          .map((o) => `osd.${o.id} ${o.up === false ? 'down' : o.up ? 'up' : ''}`)
                          .join(', ') || '—'}
                      </td>
                      <td class="mono">
                        {st.unreachableHosts.includes(host)
                          ? 'host not answering'
                          : st.daemons
                              .filter((d) => d.host === host)
                              .map(
                                (d) =>
                                  `${d.entity}${d.pid ? '' : ' (down)'}${d.restarts ? ` (restarted ${d.restarts}×)` : ''}`,
                              )
                              .join(', ')}
                      </td>
                    </tr>
                  );
                })}
            </tbody>
          </table>
          <form class="toolbar add-osd" onSubmit={addOsd}>
            <select
              name="node"
              value={osd.node || s.nodes[0]?.name}
              onChange={(e) => setOsd({ ...osd, node: (e.target as HTMLSelectElement).value })}
            >
              {s.nodes.map((n) => (
                <option value={n.name}>{n.name}</option>
              ))}
            </select>
            <input
              name="device"
              placeholder="/dev/sdb, or a file"
              value={osd.device}
              onInput={(e) => setOsd({ ...osd, device: (e.target as HTMLInputElement).value })}
            />
            <input
              name="sizeGiB"
              type="number"
              min="1"
              placeholder="GiB (new file)"
              value={osd.sizeGiB}
              onInput={(e) => setOsd({ ...osd, sizeGiB: (e.target as HTMLInputElement).value })}
            />
            <button type="submit" disabled={!!busy}>
              {busy === 'osd' ? 'Making the OSD…' : 'Add OSD'}
            </button>
            <span class="hint">Everything on the disk is lost.</span>
          </form>
          {monCandidates.length > 0 && (
            <form class="toolbar add-mon" onSubmit={addMon}>
              <select
                name="monNode"
                value={monNode || monCandidates[0]}
                onChange={(e) => setMonNode((e.target as HTMLSelectElement).value)}
              >
                {monCandidates.map((n) => (
                  <option value={n}>{n}</option>
                ))}
              </select>
              <button type="submit" disabled={!!busy}>
                {busy === 'mon' ? 'Adding the monitor…' : 'Add monitor'}
              </button>
            </form>
          )}
        </>
      )}
    </div>
  );
}
