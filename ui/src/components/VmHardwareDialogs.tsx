import { useEffect, useState } from 'preact/hooks';
import { ApiError, api, apiFull, type DiskBus, type NicModel, type Vm } from '../api';
import {
  CPU_MODELS,
  DISK_BUSES,
  diskBusAvailable,
  type EditForm,
  editBody,
  editForm,
  editProblem,
  FIRMWARES,
  NIC_MODELS,
  nextHardware,
  pendingItems,
  secureBootEditable,
  socketsHint,
  VIDEOS,
} from '../hardware';
import { refreshVms, toast } from '../store';
import { ConfirmDialog } from './ConfirmDialog';
import { FormActions } from './FormActions';

/** The API refuses an edit made on a copy of the VM older than its last change (If-Match). */
export const STALE_EDIT = 'The VM changed since you opened this dialog; reopen it to edit it as it is now.';

/** Anything but a stopped VM keeps hardware changes for its next cold start. */
const runs = (vm: Vm) => vm.state !== 'stopped';

/**
 * Name, description, vCPUs, memory, CPU, video, input, TPM and firmware of a VM. The VM is read (with its
 * ETag) when the dialog opens and only the fields changed are sent, with If-Match: a change made by
 * someone else meanwhile is refused (412) and the dialog says so. A running VM's hardware changes wait for
 * its next stop and start.
 */
export function EditHardwareDialog({ vm, onClose }: { vm: Vm; onClose: () => void }) {
  const [loaded, setLoaded] = useState<{ vm: Vm; etag?: string } | undefined>();
  const [f, setF] = useState<EditForm | undefined>();
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    let live = true;
    apiFull<Vm>('GET', `/vms/${vm.id}`)
      .then(({ data, etag }) => {
        if (!live) return;
        setLoaded({ vm: data, etag });
        setF(editForm(data));
      })
      .catch((e) => live && setError((e as Error).message));
    return () => {
      live = false;
    };
  }, [vm.id]);

  const cur = loaded?.vm;
  const set = (k: keyof EditForm) => (e: Event) => {
    if (!f || !cur) return;
    const el = e.target as HTMLInputElement;
    const next = { ...f, [k]: el.type === 'checkbox' ? el.checked : el.value };
    // Secure Boot shows what the VM has wherever it cannot be chosen.
    if (!secureBootEditable(cur, next)) next.secureBoot = nextHardware(cur).secureBoot;
    setF(next);
  };

  async function submit(e: Event) {
    e.preventDefault();
    if (!f || !cur) return;
    setError('');
    const problem = editProblem(f);
    if (problem) {
      setError(problem);
      return;
    }
    const body = editBody(cur, f);
    if (Object.keys(body).length === 0) {
      onClose();
      return;
    }
    setBusy(true);
    try {
      const { data } = await apiFull<Vm>(
        'PATCH',
        `/vms/${vm.id}`,
        body,
        loaded?.etag ? { 'if-match': loaded.etag } : {},
      );
      const pending = Object.keys(data.pendingChanges ?? {}).length > 0;
      toast(
        `${data.name} saved${pending ? '; its hardware changes wait for the next stop and start' : ''}`,
        'info',
      );
      onClose();
      await refreshVms().catch(() => {});
    } catch (err) {
      setError(err instanceof ApiError && err.status === 412 ? STALE_EDIT : (err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  const sbEditable = !!cur && !!f && secureBootEditable(cur, f);
  const sockets = f ? socketsHint(Number(f.vcpus), f.sockets) : { ok: true, text: '' };
  const models =
    f && !CPU_MODELS.some(([m]) => m === f.cpuModel) ? [[f.cpuModel, f.cpuModel], ...CPU_MODELS] : CPU_MODELS;
  const pending = cur ? pendingItems(cur.pendingChanges).join(', ') : '';
  return (
    <div class="modal-backdrop">
      <form
        class="modal edit-hardware-dialog"
        role="dialog"
        aria-label={`Edit ${vm.name}`}
        noValidate
        onSubmit={submit}
      >
        <h3>Edit {vm.name}</h3>
        {!f || !cur ? (
          <div class="modal-body">{!error && <p class="muted">Loading…</p>}</div>
        ) : (
          <div class="modal-body form">
            {runs(cur) && (
              <p class="hint running-hint">
                The VM runs: hardware changes wait for its next stop and start (a reboot of the guest is not
                one); the name and description change at once.
              </p>
            )}
            {pending && <p class="hint">Filled in with the changes pending: {pending}.</p>}
            <label>
              Name
              <input name="name" required value={f.name} onInput={set('name')} />
            </label>
            <label>
              Description
              <textarea name="description" rows={2} value={f.description} onInput={set('description')} />
            </label>
            <div class="form-row">
              <label>
                vCPUs
                <input name="vcpus" type="number" min={1} step={1} value={f.vcpus} onInput={set('vcpus')} />
              </label>
              <label>
                Memory (MiB)
                <input
                  name="memoryMiB"
                  type="number"
                  min={16}
                  step={1}
                  value={f.memoryMiB}
                  onInput={set('memoryMiB')}
                />
              </label>
            </div>
            <div class="form-row">
              <label>
                CPU model
                <select name="cpuModel" value={f.cpuModel} onChange={set('cpuModel')}>
                  {models.map(([v, l]) => (
                    <option key={v} value={v}>
                      {l}
                    </option>
                  ))}
                </select>
              </label>
              <label>
                Sockets
                <input
                  name="sockets"
                  type="number"
                  min={1}
                  placeholder="1"
                  value={f.sockets}
                  onInput={set('sockets')}
                />
              </label>
            </div>
            {sockets.text && (
              <p class={sockets.ok ? 'hint sockets-hint' : 'hint sockets-hint warning-text'}>
                {sockets.text}
              </p>
            )}
            <div class="form-row">
              <label>
                Video
                <select name="video" value={f.video} onChange={set('video')}>
                  {VIDEOS.map(([v, l]) => (
                    <option key={v} value={v}>
                      {l}
                    </option>
                  ))}
                </select>
              </label>
              <label class="check">
                <input name="tablet" type="checkbox" checked={f.tablet} onChange={set('tablet')} /> USB tablet
              </label>
            </div>
            <label class="check">
              <input name="tpm" type="checkbox" checked={f.tpm} onChange={set('tpm')} /> TPM 2.0
            </label>
            <div class="form-row">
              <label>
                Firmware
                <select name="firmware" value={f.firmware} onChange={set('firmware')}>
                  {FIRMWARES.map(([v, l]) => (
                    <option key={v} value={v}>
                      {l}
                    </option>
                  ))}
                </select>
              </label>
              <label
                class="check"
                title={
                  sbEditable
                    ? undefined
                    : cur.efiVars
                      ? 'Chosen when the VM first got UEFI: its variable store was made with or without the keys'
                      : 'Secure Boot needs UEFI firmware and machine q35'
                }
              >
                <input
                  name="secureBoot"
                  type="checkbox"
                  checked={f.secureBoot}
                  disabled={!sbEditable}
                  onChange={set('secureBoot')}
                />{' '}
                Secure Boot
              </label>
            </div>
          </div>
        )}
        <FormActions
          error={error}
          busy={busy}
          label="Save"
          busyLabel="Saving…"
          onCancel={onClose}
          disabled={!f}
        />
      </form>
    </div>
  );
}

/** A blank disk: hot-plugged while the VM runs (VirtIO; SATA and IDE only while it is stopped). */
export function AddDiskDialog({ vm, onClose }: { vm: Vm; onClose: () => void }) {
  const [size, setSize] = useState('1');
  const [bus, setBus] = useState<DiskBus>('virtio-blk');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const machine = nextHardware(vm).machine;
  const running = runs(vm);
  const why = (b: DiskBus) =>
    !diskBusAvailable(b, machine)
      ? ' (machine pc only)'
      : running && (b === 'sata' || b === 'ide')
        ? ' (not while the VM runs)'
        : '';
  async function submit(e: Event) {
    e.preventDefault();
    setError('');
    const gib = Number(size);
    if (!size.trim() || !Number.isFinite(gib) || gib <= 0) {
      setError('The size is a number of GiB, more than 0.');
      return;
    }
    setBusy(true);
    try {
      const before = new Set(vm.disks.map((d) => d.id));
      const after = await api<Vm>('POST', `/vms/${vm.id}/disks`, { sizeGiB: gib, bus });
      const added = after.disks.find((d) => !before.has(d.id));
      toast(
        `${added?.id ?? 'a disk'} (${gib} GiB) added to ${vm.name}${added?.slot ? ', hot-plugged' : ''}`,
        'info',
      );
      onClose();
      await refreshVms().catch(() => {});
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <div class="modal-backdrop">
      <form
        class="modal add-disk-dialog"
        role="dialog"
        aria-label={`Add a disk to ${vm.name}`}
        noValidate
        onSubmit={submit}
      >
        <h3>Add a disk to {vm.name}</h3>
        <div class="modal-body form">
          {running && <p class="hint">Hot-plugged: the guest sees the disk at once.</p>}
          <div class="form-row">
            <label>
              Size (GiB)
              <input
                name="sizeGiB"
                type="number"
                min="1"
                step="any"
                value={size}
                onInput={(e) => setSize((e.target as HTMLInputElement).value)}
              />
            </label>
            <label>
              Bus
              <select
                name="bus"
                value={bus}
                onChange={(e) => setBus((e.target as HTMLSelectElement).value as DiskBus)}
              >
                {DISK_BUSES.map(([v, l]) => (
                  <option key={v} value={v} disabled={why(v) !== ''}>
                    {l}
                    {why(v)}
                  </option>
                ))}
              </select>
            </label>
          </div>
          <p class="hint">
            A new volume on the pool of the VM's first disk ({vm.disks[0]?.pool ?? 'local'}).
          </p>
        </div>
        <FormActions error={error} busy={busy} label="Add" busyLabel="Adding…" onCancel={onClose} />
      </form>
    </div>
  );
}

/** A NIC on a network: hot-plugged while the VM runs. */
export function AddNicDialog({ vm, onClose }: { vm: Vm; onClose: () => void }) {
  const [network, setNetwork] = useState(vm.networks[0]?.network ?? 'default');
  const [model, setModel] = useState<NicModel>('virtio');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    setError('');
    setBusy(true);
    try {
      const before = new Set(vm.networks.map((n) => n.id));
      const after = await api<Vm>('POST', `/vms/${vm.id}/networks`, { network: network.trim(), model });
      const added = after.networks.find((n) => !before.has(n.id));
      toast(
        `${added?.id ?? 'a NIC'} on ${network.trim()} added to ${vm.name}${added?.slot ? ', hot-plugged' : ''}`,
        'info',
      );
      onClose();
      await refreshVms().catch(() => {});
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <div class="modal-backdrop">
      <form
        class="modal add-nic-dialog"
        role="dialog"
        aria-label={`Add a NIC to ${vm.name}`}
        onSubmit={submit}
      >
        <h3>Add a NIC to {vm.name}</h3>
        <div class="modal-body form">
          {runs(vm) && <p class="hint">Hot-plugged: the guest sees the NIC at once.</p>}
          <div class="form-row">
            <label>
              Network
              <input
                name="network"
                required
                value={network}
                onInput={(e) => setNetwork((e.target as HTMLInputElement).value)}
              />
            </label>
            <label>
              Model
              <select
                name="model"
                value={model}
                onChange={(e) => setModel((e.target as HTMLSelectElement).value as NicModel)}
              >
                {NIC_MODELS.map(([v, l]) => (
                  <option key={v} value={v}>
                    {l}
                  </option>
                ))}
              </select>
            </label>
          </div>
        </div>
        <FormActions
          error={error}
          busy={busy}
          label="Add"
          busyLabel="Adding…"
          onCancel={onClose}
          disabled={!network.trim()}
        />
      </form>
    </div>
  );
}

/**
 * Remove… beside a disk or a NIC, behind a confirmation (a disk: its volume kept unless asked); the API's
 * refusal (the boot disk, a disk the VM started with while it runs, one snapshots need) stays in the dialog.
 */
export function RemoveDevice({
  vm,
  kind,
  id,
  disabled,
}: {
  vm: Vm;
  kind: 'disk' | 'nic';
  id: string;
  disabled?: boolean;
}) {
  const [open, setOpen] = useState(false);
  const [deleteVolume, setDeleteVolume] = useState(false);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const disk = kind === 'disk' ? vm.disks.find((d) => d.id === id) : undefined;
  async function remove() {
    setBusy(true);
    setError('');
    try {
      const path =
        kind === 'disk'
          ? `/vms/${vm.id}/disks/${encodeURIComponent(id)}?deleteVolume=${deleteVolume}`
          : `/vms/${vm.id}/networks/${encodeURIComponent(id)}`;
      await api<Vm>('DELETE', path);
      toast(
        `${id} removed from ${vm.name}${deleteVolume && kind === 'disk' ? ', its volume deleted' : ''}`,
        'info',
      );
      setOpen(false);
      await refreshVms().catch(() => {});
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <>
      <button
        type="button"
        class={`link remove-${kind}`}
        disabled={disabled}
        onClick={() => {
          setError('');
          setDeleteVolume(false);
          setOpen(true);
        }}
      >
        Remove…
      </button>
      {open && (
        <ConfirmDialog
          title={`Remove ${id} from ${vm.name}?`}
          confirm="Remove"
          error={error}
          busy={busy}
          onConfirm={remove}
          onCancel={() => setOpen(false)}
        >
          <p>
            {runs(vm)
              ? `The ${kind === 'disk' ? 'disk' : 'NIC'} is hot-unplugged: the guest has to let it go.`
              : `The ${kind === 'disk' ? 'disk' : 'NIC'} is taken out of the VM.`}
          </p>
          {disk && (
            <label class="check">
              <input
                type="checkbox"
                name="deleteVolume"
                checked={deleteVolume}
                onChange={(e) => setDeleteVolume((e.target as HTMLInputElement).checked)}
              />{' '}
              Also delete its volume ({disk.pool}/{disk.volume}); otherwise it stays in the pool
            </label>
          )}
        </ConfirmDialog>
      )}
    </>
  );
}
