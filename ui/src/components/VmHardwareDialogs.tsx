import { useEffect, useState } from 'preact/hooks';
import {
  ApiError,
  api,
  apiFull,
  type DiskAio,
  type DiskBus,
  type DiskCache,
  type Image,
  type NicModel,
  type Vm,
} from '../api';
import {
  aioHint,
  type BootEntry,
  bootDevices,
  bootEntries,
  bootOrderBody,
  bootOrderOf,
  CPU_MODELS,
  DISK_AIOS,
  DISK_BUSES,
  DISK_CACHES,
  diskBusAvailable,
  diskIoBody,
  diskIoChange,
  diskIoLine,
  type EditForm,
  editBody,
  editForm,
  editProblem,
  FIRMWARES,
  hotAddedLine,
  type LimitsForm,
  limitsBody,
  limitsForm,
  limitsLine,
  limitsProblem,
  maxMemoryProblem,
  memoryHint,
  moveEntry,
  NIC_MODELS,
  nextHardware,
  pendingItems,
  secureBootEditable,
  socketsHint,
  VIDEOS,
} from '../hardware';
import { DEFAULT_NETWORK, fixedIpBody, fixedIpProblem, hotplugHint, overlayNetwork } from '../networks';
import { refreshVms, toast } from '../store';
import { ConfirmDialog } from './ConfirmDialog';
import { FormActions } from './FormActions';
import { FixedIpField, NetworkOptions, useNetworks } from './NetworkOptions';

/** The API refuses an edit made on a copy of the VM older than its last change (If-Match). */
export const STALE_EDIT = 'The VM changed since you opened this dialog; reopen it to edit it as it is now.';

/** Anything but a stopped VM keeps hardware changes for its next cold start. */
const runs = (vm: Vm) => vm.state !== 'stopped';

/**
 * Name, description, vCPUs, memory, CPU, video, input, TPM, firmware, boot order and hot-add maximums of a
 * VM. The VM is read (with its ETag) when the dialog opens and only the fields changed are sent, with
 * If-Match: a change made by someone else meanwhile is refused (412) and the dialog says so. A running
 * VM's hardware changes wait for its next stop and start, but for vCPUs and memory added within its
 * maximums (memory in whole 128 MiB steps), which it gets at once.
 */
export function EditHardwareDialog({ vm, onClose }: { vm: Vm; onClose: () => void }) {
  const [loaded, setLoaded] = useState<{ vm: Vm; etag?: string } | undefined>();
  const [f, setF] = useState<EditForm | undefined>();
  const [boot, setBoot] = useState<BootEntry[]>([]);
  const [maxVcpus, setMaxVcpus] = useState('');
  const [maxMemory, setMaxMemory] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  useEffect(() => {
    let live = true;
    apiFull<Vm>('GET', `/vms/${vm.id}`)
      .then(({ data, etag }) => {
        if (!live) return;
        setLoaded({ vm: data, etag });
        setF(editForm(data));
        const h = nextHardware(data);
        setBoot(bootEntries(h.bootOrder, bootDevices(data)));
        setMaxVcpus(h.maxVcpus ? String(h.maxVcpus) : '');
        setMaxMemory(h.maxMemoryMiB ? String(h.maxMemoryMiB) : '');
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
    if (maxVcpus.trim() && !(/^\d+$/.test(maxVcpus.trim()) && Number(maxVcpus) >= 1)) {
      setError('Max vCPUs: a whole number, 1 or more (or empty).');
      return;
    }
    const memoryProblem = maxMemoryProblem(maxMemory, Number(f.memoryMiB));
    if (memoryProblem) {
      setError(memoryProblem);
      return;
    }
    const h = nextHardware(cur);
    const body = { ...editBody(cur, f), ...bootOrderBody(h.bootOrder, bootOrderOf(boot)) };
    if (maxVcpus.trim() && Number(maxVcpus) !== h.maxVcpus) body.maxVcpus = Number(maxVcpus);
    if (maxMemory.trim() && Number(maxMemory) !== h.maxMemoryMiB) body.maxMemoryMiB = Number(maxMemory);
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
      const added = runs(cur) ? hotAddedLine(cur, data) : '';
      toast(
        `${data.name} saved${added ? `; now running with ${added}` : ''}${pending ? '; its hardware changes wait for the next stop and start' : ''}`,
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
  const memory = cur ? memoryHint(cur, maxMemory) : '';
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
                one), but for vCPUs and memory added within their maximums; the name and description change at
                once.
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
            {memory && <p class="hint memory-hint">{memory}</p>}
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
                Max vCPUs (hot-add)
                <input
                  name="maxVcpus"
                  type="number"
                  min={1}
                  step={1}
                  placeholder="none"
                  value={maxVcpus}
                  onInput={(e) => setMaxVcpus((e.target as HTMLInputElement).value)}
                />
              </label>
              <label>
                Max memory (MiB)
                <input
                  name="maxMemoryMiB"
                  type="number"
                  min={16}
                  step={1}
                  placeholder="none"
                  value={maxMemory}
                  onInput={(e) => setMaxMemory((e.target as HTMLInputElement).value)}
                />
              </label>
            </div>
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
            <BootOrderField entries={boot} onChange={setBoot} />
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

/**
 * A blank disk with its bus, cache mode and AIO engine: hot-plugged while the VM runs (VirtIO; SATA and
 * IDE only while it is stopped).
 */
export function AddDiskDialog({ vm, onClose }: { vm: Vm; onClose: () => void }) {
  const [size, setSize] = useState('1');
  const [bus, setBus] = useState<DiskBus>('virtio-blk');
  const [cache, setCache] = useState<DiskCache>('writeback');
  const [aio, setAio] = useState<DiskAio>('threads');
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
      const after = await api<Vm>('POST', `/vms/${vm.id}/disks`, {
        sizeGiB: gib,
        bus,
        ...diskIoBody(cache, aio),
      });
      const added = after.disks.find((d) => !before.has(d.id));
      toast(
        `${added?.id ?? 'a disk'} (${gib} GiB, ${diskIoLine(added ?? {})}) added to ${vm.name}${added?.slot ? ', hot-plugged' : ''}`,
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
          <div class="form-row">
            <label>
              Cache
              <select
                name="cache"
                value={cache}
                onChange={(e) => setCache((e.target as HTMLSelectElement).value as DiskCache)}
              >
                {DISK_CACHES.map(([v, l]) => (
                  <option key={v} value={v}>
                    {l}
                  </option>
                ))}
              </select>
            </label>
            <label>
              AIO
              <select
                name="aio"
                value={aio}
                onChange={(e) => setAio((e.target as HTMLSelectElement).value as DiskAio)}
              >
                {DISK_AIOS.map(([v, l]) => (
                  <option key={v} value={v}>
                    {l}
                  </option>
                ))}
              </select>
            </label>
          </div>
          {aioHint(cache, aio) && <p class="hint aio-hint warning-text">{aioHint(cache, aio)}</p>}
          <p class="hint">
            A new volume on the pool of the VM's first disk ({vm.disks[0]?.pool ?? 'local'}). The cache mode
            and AIO engine change later only while the VM is stopped.
          </p>
        </div>
        <FormActions error={error} busy={busy} label="Add" busyLabel="Adding…" onCancel={onClose} />
      </form>
    </div>
  );
}

/**
 * A NIC on a network (any of GET /networks): hot-plugged while the VM runs (not onto an overlay network
 * yet: the API's refusal shows inline, and a hint says so beforehand); on an overlay network optionally
 * with a fixed address, checked as typed (the API's refusals, such as another NIC's address, inline).
 */
export function AddNicDialog({ vm, onClose }: { vm: Vm; onClose: () => void }) {
  const [network, setNetwork] = useState(vm.networks[0]?.network ?? DEFAULT_NETWORK);
  const networks = useNetworks();
  const hint = runs(vm) ? hotplugHint(network, networks) : '';
  const [model, setModel] = useState<NicModel>('virtio');
  const [ip, setIp] = useState('');
  const overlay = overlayNetwork(network, networks);
  const ipProblem = overlay ? fixedIpProblem(ip, overlay) : '';
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  async function submit(e: Event) {
    e.preventDefault();
    setError('');
    setBusy(true);
    try {
      const before = new Set(vm.networks.map((n) => n.id));
      const after = await api<Vm>('POST', `/vms/${vm.id}/networks`, {
        network: network.trim(),
        model,
        ...fixedIpBody(ip, overlay),
      });
      const added = after.networks.find((n) => !before.has(n.id));
      toast(
        `${added?.id ?? 'a NIC'} on ${network.trim()}${added?.ip ? ` (${added.ip})` : ''} added to ${vm.name}${added?.slot ? ', hot-plugged' : ''}`,
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
              <select
                name="network"
                value={network}
                onChange={(e) => setNetwork((e.target as HTMLSelectElement).value)}
              >
                <NetworkOptions networks={networks} value={network} />
              </select>
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
          <FixedIpField network={overlay} value={ip} onInput={setIp} />
          {hint && <p class="hint warning-text nic-network-hint">{hint}</p>}
        </div>
        <FormActions
          error={error}
          busy={busy}
          label="Add"
          busyLabel="Adding…"
          onCancel={onClose}
          disabled={!network.trim() || !!ipProblem}
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

/** The ISO images of GET /images (for the media drive), '' or why they could not be read. */
function useIsos(): [Image[], string] {
  const [isos, setIsos] = useState<Image[]>([]);
  const [error, setError] = useState('');
  useEffect(() => {
    let live = true;
    api<Image[]>('GET', '/images')
      .then((all) => live && setIsos(all.filter((i) => i.kind === 'iso')))
      .catch((e) => live && setError((e as Error).message));
    return () => {
      live = false;
    };
  }, []);
  return [isos, error];
}

/**
 * The media drive (cd1) row of the Hardware card: the ISO in it or empty, Insert… (an ISO), Eject; a
 * stopped VM without the drive is offered one. Live while the VM runs; the API's refusal shows inline.
 */
export function MediaDrive({ vm, disabled }: { vm: Vm; disabled?: boolean }) {
  const [isos, isosError] = useIsos();
  const [open, setOpen] = useState(false);
  const [choice, setChoice] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const media = vm.media;
  if (!media && vm.state !== 'stopped') return null;
  const inDrive = media?.image;
  const name = inDrive ? (isos.find((i) => i.id === inDrive || i.name === inDrive)?.name ?? inDrive) : '';
  // An ISO in a host's own pool goes into VMs of that host only.
  const usable = isos.filter((i) => i.shared || !i.node || !vm.node || i.node === vm.node);
  // Insert… shows the first ISO until another is chosen (the list may come after the form opens).
  const picked = choice || (media ? (usable[0]?.id ?? '') : '');

  async function post(image: string | null) {
    setBusy(true);
    setError('');
    try {
      await api<Vm>('POST', `/vms/${vm.id}/media`, { image });
      const iso = image ? (isos.find((i) => i.id === image)?.name ?? image) : '';
      toast(
        !media
          ? `CD/DVD drive added to ${vm.name}${iso ? ` with ${iso}` : ''}`
          : iso
            ? `${iso} inserted into ${vm.name}`
            : `CD/DVD drive of ${vm.name} ejected`,
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
  function openForm() {
    setError('');
    setChoice('');
    setOpen(true);
  }

  return (
    <>
      <dt>CD/DVD drive</dt>
      <dd class="media" data-media={media ? (inDrive ? 'iso' : 'empty') : 'none'}>
        {media ? (
          <span class="media-image">{inDrive ? name : 'empty'}</span>
        ) : (
          <span class="muted">none</span>
        )}{' '}
        {!open && media && (
          <>
            <button
              type="button"
              class="link"
              data-action="media-insert"
              disabled={disabled}
              onClick={openForm}
            >
              Insert…
            </button>{' '}
            <button
              type="button"
              class="link"
              data-action="media-eject"
              disabled={disabled || busy || !inDrive}
              onClick={() => post(null)}
            >
              Eject
            </button>
          </>
        )}
        {!open && !media && (
          <button type="button" class="link" data-action="media-add" disabled={disabled} onClick={openForm}>
            Add CD/DVD drive
          </button>
        )}
        {open && (
          <form
            class="inline-form media-form"
            onSubmit={(e) => {
              e.preventDefault();
              if (media && !picked) {
                setError('Choose an ISO image.');
                return;
              }
              post(picked || null);
            }}
          >
            <select
              name="image"
              aria-label="ISO image"
              value={picked}
              onChange={(e) => setChoice((e.target as HTMLSelectElement).value)}
            >
              {!media && <option value="">(empty)</option>}
              {usable.map((i) => (
                <option key={i.id} value={i.id}>
                  {i.name}
                </option>
              ))}
            </select>{' '}
            <button type="submit" class="primary" disabled={busy || (!!media && !picked)}>
              {media ? 'Insert' : 'Add'}
            </button>{' '}
            <button type="button" onClick={() => setOpen(false)}>
              Cancel
            </button>
            {media && usable.length === 0 && !isosError && <span class="hint"> no ISO images</span>}
          </form>
        )}
        {(error || (open && isosError)) && (
          <div class="form-error" role="alert">
            {error || isosError}
          </div>
        )}
      </dd>
    </>
  );
}

/** A disk's I/O limits (totals): IOPS and MB/s, empty for none; at once while the VM runs. */
export function DiskLimitsDialog({
  vm,
  disk,
  onClose,
}: {
  vm: Vm;
  disk: Vm['disks'][number];
  onClose: () => void;
}) {
  const [f, setF] = useState<LimitsForm>(limitsForm(disk.limits));
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const apart = !!(
    disk.limits?.iopsRead ||
    disk.limits?.iopsWrite ||
    disk.limits?.bpsRead ||
    disk.limits?.bpsWrite
  );
  const set = (k: keyof LimitsForm) => (e: Event) =>
    setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  async function submit(e: Event) {
    e.preventDefault();
    setError('');
    const problem = limitsProblem(f);
    if (problem) {
      setError(problem);
      return;
    }
    setBusy(true);
    try {
      const body = limitsBody(f);
      await api<Vm>('PATCH', `/vms/${vm.id}/disks/${disk.id}`, body);
      const line = limitsLine(body.limits);
      toast(`${disk.id} of ${vm.name}: ${line || 'no I/O limits'}`, 'info');
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
        class="modal disk-limits-dialog"
        role="dialog"
        aria-label={`I/O limits of ${disk.id}`}
        noValidate
        onSubmit={submit}
      >
        <h3>
          I/O limits of {disk.id} ({vm.name})
        </h3>
        <div class="modal-body form">
          <div class="form-row">
            <label>
              IOPS
              <input
                name="iops"
                type="number"
                min={0}
                step={1}
                placeholder="no limit"
                value={f.iops}
                onInput={set('iops')}
              />
            </label>
            <label>
              MB/s
              <input
                name="mbps"
                type="number"
                min={0}
                step="any"
                placeholder="no limit"
                value={f.mbps}
                onInput={set('mbps')}
              />
            </label>
          </div>
          <p class="hint">
            Reads and writes together; empty: no limit.{' '}
            {runs(vm) ? 'Applied at once.' : 'Applied when the VM starts.'}
          </p>
          {apart && (
            <p class="hint warning-text">
              The disk has separate read and write limits ({limitsLine(disk.limits)}); saving replaces them.
            </p>
          )}
        </div>
        <FormActions error={error} busy={busy} label="Save" busyLabel="Saving…" onCancel={onClose} />
      </form>
    </div>
  );
}

/**
 * A disk's cache mode and AIO engine: QEMU opens the disk with them, so they change while the VM is
 * stopped; the API's refusal (the VM runs, native AIO without O_DIRECT, AIO on RBD) stays in the dialog.
 */
export function DiskIoDialog({
  vm,
  disk,
  onClose,
}: {
  vm: Vm;
  disk: Vm['disks'][number];
  onClose: () => void;
}) {
  const [cache, setCache] = useState<DiskCache>(disk.cache ?? 'writeback');
  const [aio, setAio] = useState<DiskAio>(disk.aio ?? 'threads');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const warning = aioHint(cache, aio);
  async function submit(e: Event) {
    e.preventDefault();
    setError('');
    const body = diskIoChange(disk, cache, aio);
    if (Object.keys(body).length === 0) {
      onClose();
      return;
    }
    setBusy(true);
    try {
      const after = await api<Vm>('PATCH', `/vms/${vm.id}/disks/${disk.id}`, body);
      toast(
        `${disk.id} of ${vm.name}: ${diskIoLine(after.disks.find((d) => d.id === disk.id) ?? body)}`,
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
        class="modal disk-io-dialog"
        role="dialog"
        aria-label={`I/O mode of ${disk.id}`}
        noValidate
        onSubmit={submit}
      >
        <h3>
          I/O mode of {disk.id} ({vm.name})
        </h3>
        <div class="modal-body form">
          {runs(vm) && (
            <p class="hint running-hint warning-text">
              The VM runs: a disk's cache mode and AIO engine change while it is stopped.
            </p>
          )}
          <div class="form-row">
            <label>
              Cache
              <select
                name="cache"
                value={cache}
                onChange={(e) => setCache((e.target as HTMLSelectElement).value as DiskCache)}
              >
                {DISK_CACHES.map(([v, l]) => (
                  <option key={v} value={v}>
                    {l}
                  </option>
                ))}
              </select>
            </label>
            <label>
              AIO
              <select
                name="aio"
                value={aio}
                onChange={(e) => setAio((e.target as HTMLSelectElement).value as DiskAio)}
              >
                {DISK_AIOS.map(([v, l]) => (
                  <option key={v} value={v}>
                    {l}
                  </option>
                ))}
              </select>
            </label>
          </div>
          {warning && <p class="hint aio-hint warning-text">{warning}</p>}
          <p class="hint">
            none suits production (no host page cache, the guest's flushes reach the disk); unsafe ignores
            flushes. Applied when the VM next starts.
          </p>
        </div>
        <FormActions error={error} busy={busy} label="Save" busyLabel="Saving…" onCancel={onClose} />
      </form>
    </div>
  );
}

/** Pulls a NIC's cable or plugs it back in (the guest sees the carrier go and come). */
export function NicLinkToggle({
  vm,
  nic,
  disabled,
}: {
  vm: Vm;
  nic: Vm['networks'][number];
  disabled?: boolean;
}) {
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const down = !!nic.linkDown;
  async function toggle() {
    setBusy(true);
    setError('');
    try {
      await api<Vm>('PATCH', `/vms/${vm.id}/networks/${nic.id}`, { link: down ? 'up' : 'down' });
      toast(`${nic.id} of ${vm.name} ${down ? 'connected' : 'disconnected'}`, 'info');
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
        class="link nic-link"
        data-action={down ? 'nic-connect' : 'nic-disconnect'}
        disabled={disabled || busy}
        onClick={toggle}
      >
        {down ? 'Connect' : 'Disconnect'}
      </button>
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
    </>
  );
}

/** Boot order: the VM's devices, checked ones tried by the firmware in list order. */
export function BootOrderField({
  entries,
  onChange,
}: {
  entries: BootEntry[];
  onChange: (e: BootEntry[]) => void;
}) {
  return (
    <fieldset class="boot-order">
      <legend>Boot order</legend>
      {entries.length === 0 && <p class="hint">No devices.</p>}
      <ol>
        {entries.map((e, i) => (
          <li key={e.id} data-boot={e.id}>
            <label class="check">
              <input
                type="checkbox"
                name={`boot-${e.id}`}
                checked={e.on}
                onChange={(ev) =>
                  onChange(
                    entries.map((x, j) =>
                      j === i ? { ...x, on: (ev.target as HTMLInputElement).checked } : x,
                    ),
                  )
                }
              />{' '}
              {e.id}
            </label>{' '}
            <button
              type="button"
              class="link"
              aria-label={`Move ${e.id} up`}
              disabled={i === 0}
              onClick={() => onChange(moveEntry(entries, i, -1))}
            >
              ↑
            </button>
            <button
              type="button"
              class="link"
              aria-label={`Move ${e.id} down`}
              disabled={i === entries.length - 1}
              onClick={() => onChange(moveEntry(entries, i, 1))}
            >
              ↓
            </button>
          </li>
        ))}
      </ol>
      <p class="hint">None checked: the boot setting decides. cd1 is the CD/DVD drive.</p>
    </fieldset>
  );
}
