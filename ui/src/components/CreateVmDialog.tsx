import { useEffect, useState } from 'preact/hooks';
import { api, type Image, type Placement, type Vm } from '../api';
import { go } from '../route';
import { refreshAll, toast, useStore } from '../store';
import { collator } from '../window';

/**
 * New VM booting an ISO from /images, optionally placed (a host, affinity and anti-affinity groups);
 * the API's validation message is shown inline.
 */
export function CreateVmDialog({ onClose }: { onClose: () => void }) {
  const s = useStore();
  const [images, setImages] = useState<Image[]>([]);
  const [f, setF] = useState({
    name: '',
    vcpus: 1,
    memoryMiB: 512,
    diskGiB: 8,
    iso: '',
    start: false,
    ha: false,
    node: '',
    affinityGroup: '',
    antiAffinityGroup: '',
  });
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    api<Image[]>('GET', '/images')
      .then((all) => {
        const isos = all.filter((i) => i.kind === 'iso');
        setImages(isos);
        if (isos[0]) setF((old) => ({ ...old, iso: old.iso || isos[0]!.name }));
      })
      .catch((e) => setError((e as Error).message));
  }, []);

  const hosts = [...s.nodes].sort((a, b) => collator.compare(a.name, b.name));
  const set = (k: keyof typeof f) => (e: Event) => {
    const el = e.target as HTMLInputElement;
    const v = el.type === 'checkbox' ? el.checked : el.type === 'number' ? Number(el.value) : el.value;
    setF({ ...f, [k]: v });
  };

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError('');
    const placement: Placement = {};
    if (f.node) placement.node = f.node;
    if (f.affinityGroup.trim()) placement.affinityGroup = f.affinityGroup.trim();
    if (f.antiAffinityGroup.trim()) placement.antiAffinityGroup = f.antiAffinityGroup.trim();
    try {
      const vm = await api<Vm>('POST', '/vms', {
        name: f.name,
        vcpus: f.vcpus,
        memoryMiB: f.memoryMiB,
        disks: [{ sizeGiB: f.diskGiB }],
        networks: [{ network: 'default' }],
        boot: f.iso ? { cdrom: f.iso } : { disk: 0 },
        start: f.start,
        ...(Object.keys(placement).length ? { placement } : {}),
        ...(f.ha ? { ha: { enabled: true } } : {}),
      });
      toast(
        vm.state === 'pending'
          ? `VM ${vm.name} created, pending: ${vm.reason ?? 'waiting for a host'}`
          : `VM ${vm.name} created${vm.node ? ` on ${vm.node}` : ''}`,
        'info',
      );
      await refreshAll().catch(() => {});
      onClose();
      go(`/vms/${vm.id}`);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  return (
    <div class="modal-backdrop">
      <form class="modal" role="dialog" aria-label="New virtual machine" onSubmit={submit}>
        <h3>New virtual machine</h3>
        <div class="modal-body form">
          <label>
            Name
            <input name="name" required value={f.name} onInput={set('name')} />
          </label>
          <label>
            vCPU
            <input name="vcpus" type="number" min={1} value={f.vcpus} onInput={set('vcpus')} />
          </label>
          <label>
            Memory (MiB)
            <input
              name="memoryMiB"
              type="number"
              min={16}
              step={16}
              value={f.memoryMiB}
              onInput={set('memoryMiB')}
            />
          </label>
          <label>
            Disk (GiB)
            <input name="diskGiB" type="number" min={1} value={f.diskGiB} onInput={set('diskGiB')} />
          </label>
          <label>
            Boot ISO
            <select name="iso" value={f.iso} onChange={set('iso')}>
              <option value="">(none: boot from disk)</option>
              {images.map((i) => (
                <option key={i.id} value={i.name}>
                  {i.name}
                </option>
              ))}
            </select>
          </label>
          <label class="check">
            <input name="start" type="checkbox" checked={f.start} onChange={set('start')} /> Start after
            creation
          </label>
          <label class="check">
            <input name="ha" type="checkbox" checked={f.ha} onChange={set('ha')} /> High availability: restart
            on another host when its host fails
          </label>
          <details class="placement">
            <summary>Placement (optional)</summary>
            <div class="form">
              <label>
                Host
                <select name="node" value={f.node} onChange={set('node')}>
                  <option value="">Automatic (the scheduler picks a host)</option>
                  {hosts.map((n) => (
                    <option key={n.name} value={n.name}>
                      {n.name}
                      {n.state !== 'ready' ? ` (${n.state})` : ''}
                    </option>
                  ))}
                </select>
              </label>
              <label>
                Affinity group
                <input
                  name="affinityGroup"
                  placeholder="VMs of a group share a host"
                  value={f.affinityGroup}
                  onInput={set('affinityGroup')}
                />
              </label>
              <label>
                Anti-affinity group
                <input
                  name="antiAffinityGroup"
                  placeholder="VMs of a group run on different hosts"
                  value={f.antiAffinityGroup}
                  onInput={set('antiAffinityGroup')}
                />
              </label>
            </div>
          </details>
          {error && (
            <div class="form-error" role="alert">
              {error}
            </div>
          )}
        </div>
        <div class="modal-actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button class="primary" type="submit" disabled={busy}>
            Create
          </button>
        </div>
      </form>
    </div>
  );
}
