import { useEffect, useState } from 'preact/hooks';
import { api, type CreateVmBody, type Image, type Placement, type Vm } from '../api';
import {
  aioHint,
  CPU_MODELS,
  clusterCpuLabel,
  DEFAULT_HARDWARE,
  DISK_AIOS,
  DISK_BUSES,
  DISK_CACHES,
  diskBusAvailable,
  diskIoBody,
  FIRMWARES,
  fitHardware,
  type HardwareForm,
  hardwareBody,
  MACHINES,
  maxMemoryProblem,
  NIC_MODELS,
  secureBootAvailable,
  socketsHint,
  VIDEOS,
} from '../hardware';
import { DEFAULT_NETWORK, fixedIpBody, fixedIpProblem, overlayNetwork } from '../networks';
import { go } from '../route';
import { createStartupBody, DEFAULT_STARTUP, type StartupForm, startupProblem } from '../startup';
import { refreshAll, refreshCluster, toast, useStore } from '../store';
import { parseTags } from '../tags';
import { collator } from '../window';
import { FixedIpField, NetworkOptions, useNetworks } from './NetworkOptions';
import { StartupFields } from './VmStartupDialog';

/**
 * New VM booting an ISO from /images, optionally placed (a host, affinity and anti-affinity groups), with
 * its virtual hardware (machine, firmware, TPM, CPU model, devices, disk cache and AIO, hot-add maximums),
 * autostart at host boot and cloud-init; the API's validation message is shown inline. Without a CPU model
 * the VM gets the cluster's default, named as GET /cluster says it is now.
 */
export function CreateVmDialog({ onClose }: { onClose: () => void }) {
  const s = useStore();
  const [images, setImages] = useState<Image[]>([]);
  const networks = useNetworks();
  const [f, setF] = useState({
    name: '',
    vcpus: 1,
    memoryMiB: 512,
    diskGiB: 8,
    iso: '',
    network: DEFAULT_NETWORK,
    /** The NIC's fixed address (overlay networks only; empty: OVN picks one). */
    ip: '',
    start: false,
    ha: false,
    node: '',
    affinityGroup: '',
    antiAffinityGroup: '',
    maxVcpus: '',
    maxMemoryMiB: '',
    media: false,
    mediaIso: '',
    tags: '',
  });
  const [hw, setHw] = useState<HardwareForm>(DEFAULT_HARDWARE);
  const [startup, setStartup] = useState<StartupForm>(DEFAULT_STARTUP);
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
    // the default CPU model may have changed since login
    refreshCluster().catch(() => {});
  }, []);

  const hosts = [...s.nodes].sort((a, b) => collator.compare(a.name, b.name));
  const set = (k: keyof typeof f) => (e: Event) => {
    const el = e.target as HTMLInputElement;
    const v = el.type === 'checkbox' ? el.checked : el.type === 'number' ? Number(el.value) : el.value;
    setF({ ...f, [k]: v });
  };
  const setHwField = (k: keyof HardwareForm) => (e: Event) => {
    const el = e.target as HTMLInputElement;
    setHw(fitHardware({ ...hw, [k]: el.type === 'checkbox' ? el.checked : el.value }));
  };
  const secureBootOk = secureBootAvailable(hw.firmware, hw.machine);
  const sockets = socketsHint(f.vcpus, hw.sockets);
  const aio = aioHint(hw.diskCache, hw.diskAio);
  const tags = parseTags(f.tags);
  const overlay = overlayNetwork(f.network, networks);

  async function submit(e: Event) {
    e.preventDefault();
    const problem =
      tags.problem ||
      (overlay ? fixedIpProblem(f.ip, overlay) : '') ||
      startupProblem(startup) ||
      (f.maxVcpus.trim() && !(/^\d+$/.test(f.maxVcpus.trim()) && Number(f.maxVcpus) >= 1)
        ? 'Max vCPUs: a whole number, 1 or more (or empty).'
        : '') ||
      maxMemoryProblem(f.maxMemoryMiB, f.memoryMiB);
    if (problem) {
      setError(problem);
      return;
    }
    setBusy(true);
    setError('');
    const placement: Placement = {};
    if (f.node) placement.node = f.node;
    if (f.affinityGroup.trim()) placement.affinityGroup = f.affinityGroup.trim();
    if (f.antiAffinityGroup.trim()) placement.antiAffinityGroup = f.antiAffinityGroup.trim();
    try {
      const body: CreateVmBody = {
        name: f.name,
        vcpus: f.vcpus,
        memoryMiB: f.memoryMiB,
        disks: [
          {
            sizeGiB: f.diskGiB,
            ...(hw.diskBus !== DEFAULT_HARDWARE.diskBus ? { bus: hw.diskBus } : {}),
            ...diskIoBody(hw.diskCache, hw.diskAio),
          },
        ],
        networks: [
          {
            network: f.network,
            ...fixedIpBody(f.ip, overlay),
            ...(hw.nicModel !== DEFAULT_HARDWARE.nicModel ? { model: hw.nicModel } : {}),
          },
        ],
        boot: f.iso ? { cdrom: f.iso } : { disk: 0 },
        ...(tags.tags.length ? { tags: tags.tags } : {}),
        start: f.start,
        ...(Object.keys(placement).length ? { placement } : {}),
        ...(f.ha ? { ha: { enabled: true } } : {}),
        ...hardwareBody(hw),
        ...(f.maxVcpus.trim() ? { maxVcpus: Number(f.maxVcpus) } : {}),
        ...(f.maxMemoryMiB.trim() ? { maxMemoryMiB: Number(f.maxMemoryMiB) } : {}),
        ...(f.media ? { media: f.mediaIso ? { image: f.mediaIso } : {} } : {}),
        ...createStartupBody(startup),
      };
      const vm = await api<Vm>('POST', '/vms', body);
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
          <label>
            Network
            <select
              name="network"
              value={f.network}
              onChange={(e) => setF({ ...f, network: (e.target as HTMLSelectElement).value })}
            >
              <NetworkOptions networks={networks} value={f.network} />
            </select>
          </label>
          <FixedIpField network={overlay} value={f.ip} onInput={(ip) => setF({ ...f, ip })} />
          <label>
            Tags (optional)
            <input
              name="tags"
              class={tags.problem ? 'mono invalid' : 'mono'}
              value={f.tags}
              placeholder="env:prod, nightly"
              onInput={set('tags')}
            />
            {tags.problem ? (
              <span class="field-error" data-field="tags">
                {tags.problem}
              </span>
            ) : (
              <span class="hint">Comma- or space-separated; backup jobs can select VMs by tag.</span>
            )}
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
          <details class="hardware">
            <summary>Hardware</summary>
            <div class="form">
              <div class="form-row">
                <label>
                  Machine
                  <select name="machine" value={hw.machine} onChange={setHwField('machine')}>
                    {MACHINES.map(([v, l]) => (
                      <option key={v} value={v}>
                        {l}
                      </option>
                    ))}
                  </select>
                </label>
                <label>
                  Firmware
                  <select name="firmware" value={hw.firmware} onChange={setHwField('firmware')}>
                    {FIRMWARES.map(([v, l]) => (
                      <option key={v} value={v}>
                        {l}
                      </option>
                    ))}
                  </select>
                </label>
              </div>
              <label
                class="check"
                title={secureBootOk ? undefined : 'Secure Boot needs UEFI firmware and machine q35'}
              >
                <input
                  name="secureBoot"
                  type="checkbox"
                  checked={hw.secureBoot}
                  disabled={!secureBootOk}
                  onChange={setHwField('secureBoot')}
                />{' '}
                Secure Boot
              </label>
              <label class="check">
                <input name="tpm" type="checkbox" checked={hw.tpm} onChange={setHwField('tpm')} /> TPM 2.0
              </label>
              <div class="form-row">
                <label>
                  CPU model
                  <select name="cpuModel" value={hw.cpuModel} onChange={setHwField('cpuModel')}>
                    <option value="">{clusterCpuLabel(s.cluster?.cpu.model)}</option>
                    {CPU_MODELS.map(([v, l]) => (
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
                    value={hw.sockets}
                    onInput={setHwField('sockets')}
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
                    value={f.maxVcpus}
                    onInput={(e) => setF({ ...f, maxVcpus: (e.target as HTMLInputElement).value })}
                  />
                </label>
                <label>
                  Max memory (MiB)
                  <input
                    name="maxMemoryMiB"
                    type="number"
                    min={16}
                    step={16}
                    placeholder="none"
                    value={f.maxMemoryMiB}
                    onInput={(e) => setF({ ...f, maxMemoryMiB: (e.target as HTMLInputElement).value })}
                  />
                </label>
              </div>
              <p class="hint">
                host is fastest; an x86-64-v level lets the VM move between hosts of different CPU
                generations. With a maximum, vCPUs and memory (128 MiB steps) can be added while the VM runs.
              </p>
              <div class="form-row">
                <label>
                  Video
                  <select name="video" value={hw.video} onChange={setHwField('video')}>
                    {VIDEOS.map(([v, l]) => (
                      <option key={v} value={v}>
                        {l}
                      </option>
                    ))}
                  </select>
                </label>
                <label class="check">
                  <input name="tablet" type="checkbox" checked={hw.tablet} onChange={setHwField('tablet')} />{' '}
                  USB tablet
                </label>
              </div>
              <div class="form-row">
                <label>
                  Disk bus
                  <select name="diskBus" value={hw.diskBus} onChange={setHwField('diskBus')}>
                    {DISK_BUSES.map(([v, l]) => (
                      <option key={v} value={v} disabled={!diskBusAvailable(v, hw.machine)}>
                        {l}
                        {diskBusAvailable(v, hw.machine) ? '' : ' (machine pc only)'}
                      </option>
                    ))}
                  </select>
                </label>
                <label>
                  NIC model
                  <select name="nicModel" value={hw.nicModel} onChange={setHwField('nicModel')}>
                    {NIC_MODELS.map(([v, l]) => (
                      <option key={v} value={v}>
                        {l}
                      </option>
                    ))}
                  </select>
                </label>
              </div>
              <div class="form-row">
                <label>
                  Disk cache
                  <select name="diskCache" value={hw.diskCache} onChange={setHwField('diskCache')}>
                    {DISK_CACHES.map(([v, l]) => (
                      <option key={v} value={v}>
                        {l}
                      </option>
                    ))}
                  </select>
                </label>
                <label>
                  Disk AIO
                  <select name="diskAio" value={hw.diskAio} onChange={setHwField('diskAio')}>
                    {DISK_AIOS.map(([v, l]) => (
                      <option key={v} value={v}>
                        {l}
                      </option>
                    ))}
                  </select>
                </label>
              </div>
              {aio && <p class="hint aio-hint warning-text">{aio}</p>}
              <div class="form-row">
                <label class="check">
                  <input name="media" type="checkbox" checked={f.media} onChange={set('media')} /> Add a
                  CD/DVD drive
                </label>
                <label>
                  ISO in the drive
                  <select name="mediaIso" value={f.mediaIso} disabled={!f.media} onChange={set('mediaIso')}>
                    <option value="">(empty)</option>
                    {images.map((i) => (
                      <option key={i.id} value={i.name}>
                        {i.name}
                      </option>
                    ))}
                  </select>
                </label>
              </div>
              <p class="hint">
                Windows without VirtIO drivers: SATA disk bus and an e1000e NIC (UEFI, Secure Boot and TPM 2.0
                for Windows 11).
              </p>
            </div>
          </details>
          <details class="startup">
            <summary>Startup and cloud-init</summary>
            <div class="form">
              <StartupFields f={startup} onChange={setStartup} />
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
