import { useEffect, useState } from 'preact/hooks';
import { api, type Image, type Vm } from '../api';
import { go } from '../route';
import { refreshAll, toast } from '../store';

/** New VM booting an ISO from /images; the API's validation message is shown inline. */
export function CreateVmDialog({ onClose }: { onClose: () => void }) {
  const [images, setImages] = useState<Image[]>([]);
  const [f, setF] = useState({ name: '', vcpus: 1, memoryMiB: 512, diskGiB: 8, iso: '', start: false });
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

  const set = (k: keyof typeof f) => (e: Event) => {
    const el = e.target as HTMLInputElement;
    const v = el.type === 'checkbox' ? el.checked : el.type === 'number' ? Number(el.value) : el.value;
    setF({ ...f, [k]: v });
  };

  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      const vm = await api<Vm>('POST', '/vms', {
        name: f.name,
        vcpus: f.vcpus,
        memoryMiB: f.memoryMiB,
        disks: [{ sizeGiB: f.diskGiB }],
        networks: [{ network: 'default' }],
        boot: f.iso ? { cdrom: f.iso } : { disk: 0 },
        start: f.start,
      });
      toast(`VM ${vm.name} created`, 'info');
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
