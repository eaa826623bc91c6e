import { useEffect, useState } from 'preact/hooks';
import { api, fmtBytes, type Task, type Vm } from '../api';
import {
  bootOrderLine,
  cpuLine,
  diskBusLabel,
  diskIoLine,
  firmwareLine,
  limitsLine,
  nicModelLabel,
  pendingLine,
  videoLabel,
} from '../hardware';
import { fixedIpLabel, NO_ADDRESS_YET, networkHref } from '../networks';
import { hostHref } from '../route';
import { cloudInitLine, onBootLine } from '../startup';
import { putTask, refreshVms, toast, useStore } from '../store';
import { StateBadge } from './StateBadge';
import { useNicAddresses } from './useNicAddresses';
import { VmHaCard } from './VmHaCard';
import {
  AddDiskDialog,
  AddNicDialog,
  DiskIoDialog,
  DiskLimitsDialog,
  EditHardwareDialog,
  MediaDrive,
  NicLinkToggle,
  RemoveDevice,
} from './VmHardwareDialogs';
import { EditStartupDialog } from './VmStartupDialog';
import { VmTagsField } from './VmTags';

interface GuestFacts {
  os?: { 'pretty-name'?: string; name?: string; 'kernel-release'?: string };
  hostname?: string;
  ips?: string[];
  uptimeSec?: number | null;
}

/** Grows a disk (online while the VM runs); the API's refusal shows beside the field. */
function GrowDisk({ vm, disk }: { vm: Vm; disk: Vm['disks'][number] }) {
  const [open, setOpen] = useState(false);
  const [size, setSize] = useState(String(Math.ceil(disk.sizeBytes / 1024 ** 3) + 1));
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  if (!open)
    return (
      <button type="button" class="link grow-disk" onClick={() => setOpen(true)}>
        Grow…
      </button>
    );
  async function submit(e: Event) {
    e.preventDefault();
    setBusy(true);
    setError('');
    try {
      await api('POST', `/vms/${vm.id}/disks/${disk.id}/resize`, { sizeGiB: Number(size) });
      toast(`disk ${disk.id} of ${vm.name} is now ${size} GiB`, 'info');
      setOpen(false);
      await refreshVms();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <form class="inline-form grow-form" onSubmit={submit}>
      <input
        name="sizeGiB"
        type="number"
        min="1"
        step="1"
        value={size}
        onInput={(e) => setSize((e.target as HTMLInputElement).value)}
      />{' '}
      GiB{' '}
      <button type="submit" class="primary" disabled={busy}>
        Grow
      </button>{' '}
      <button type="button" onClick={() => setOpen(false)}>
        Cancel
      </button>
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
    </form>
  );
}

/** Moves a disk to another pool (live while the VM runs), showing the task's progress until it ends. */
function MoveDisk({ vm, disk }: { vm: Vm; disk: Vm['disks'][number] }) {
  const [open, setOpen] = useState(false);
  const [pools, setPools] = useState<string[]>([]);
  const [pool, setPool] = useState('');
  const [error, setError] = useState('');
  // The vm.disk.move task; its events keep the store's copy current.
  const [taskId, setTaskId] = useState<string | undefined>();
  const task = useStore().tasks.find((t) => t.id === taskId);
  useEffect(() => {
    if (!open) return;
    api<{ name: string; hosts: { name: string }[] }[]>('GET', '/pools')
      .then((list) => {
        const names = list
          .filter((p) => p.name !== disk.pool && p.hosts.some((h) => h.name === vm.node))
          .map((p) => p.name);
        setPools(names);
        setPool(names[0] ?? '');
      })
      .catch((e) => setError((e as Error).message));
  }, [open, disk.pool, vm.node]);
  // A task not in the store (dropped by a refresh of the task list): fetched once, not polled.
  const missing = taskId !== undefined && !task;
  useEffect(() => {
    if (!missing || !taskId) return;
    api<Task>('GET', `/tasks/${encodeURIComponent(taskId)}`)
      .then(putTask)
      .catch((e) => {
        setError((e as Error).message);
        setTaskId(undefined);
      });
  }, [missing, taskId]);
  // Once the task ends: say so, once.
  const status = task?.status;
  useEffect(() => {
    if (!task || status === 'running') return;
    setTaskId(undefined);
    if (status === 'error') {
      setError(task.error?.message ?? 'the move failed');
      return;
    }
    toast(`disk ${disk.id} of ${vm.name} moved to ${pool}`, 'info');
    setOpen(false);
    refreshVms().catch(() => {});
  }, [taskId, status]);
  if (!open)
    return (
      <button type="button" class="link move-disk" onClick={() => setOpen(true)}>
        Move…
      </button>
    );
  async function submit(e: Event) {
    e.preventDefault();
    setError('');
    try {
      const t = await api<Task>('POST', `/vms/${vm.id}/disks/${disk.id}/move`, { pool });
      putTask(t);
      setTaskId(t.id);
    } catch (err) {
      setError((err as Error).message);
    }
  }
  const moving = task?.status === 'running';
  return (
    <form class="inline-form move-form" onSubmit={submit}>
      to{' '}
      <select name="pool" value={pool} onChange={(e) => setPool((e.target as HTMLSelectElement).value)}>
        {pools.map((p) => (
          <option value={p}>{p}</option>
        ))}
      </select>{' '}
      <button type="submit" class="primary" disabled={moving || !pool}>
        {moving ? `Moving… ${Math.floor((task?.progress ?? 0) * 100)}%` : 'Move'}
      </button>{' '}
      {!moving && (
        <button type="button" onClick={() => setOpen(false)}>
          Cancel
        </button>
      )}
      <span class="hint">
        {vm.state === 'running' ? 'live: the guest keeps running' : 'copied while the VM is stopped'}
      </span>
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
    </form>
  );
}

/** Limits… of a disk row: the dialog with the disk's IOPS and MB/s. */
function DiskLimits({ vm, disk, disabled }: { vm: Vm; disk: Vm['disks'][number]; disabled?: boolean }) {
  const [open, setOpen] = useState(false);
  return (
    <>
      <button
        type="button"
        class="link disk-limits"
        data-action="disk-limits"
        disabled={disabled}
        onClick={() => setOpen(true)}
      >
        Limits…
      </button>
      {open && <DiskLimitsDialog vm={vm} disk={disk} onClose={() => setOpen(false)} />}
    </>
  );
}

/**
 * I/O mode… of a disk row: its cache mode and AIO engine, changed while the VM is stopped (disabled, and
 * saying so, while it runs).
 */
function DiskIo({ vm, disk, disabled }: { vm: Vm; disk: Vm['disks'][number]; disabled?: boolean }) {
  const [open, setOpen] = useState(false);
  const running = vm.state !== 'stopped';
  return (
    <>
      <button
        type="button"
        class="link disk-io"
        data-action="disk-io"
        disabled={disabled || running}
        title={running ? "Stop the VM to change the disk's cache mode and AIO engine" : undefined}
        onClick={() => setOpen(true)}
      >
        I/O mode…
      </button>
      {open && <DiskIoDialog vm={vm} disk={disk} onClose={() => setOpen(false)} />}
    </>
  );
}

/**
 * The VM's virtual hardware: machine, firmware, TPM, CPU, video, input, hot-add maximums, each disk (with
 * its cache mode) and NIC (with its address on an OVN network); the changes waiting for its next cold start; Edit hardware…, Add disk…, Add
 * NIC…, Limits… and I/O mode… per disk, Remove… per disk and NIC.
 */
function HardwareCard({ vm }: { vm: Vm }) {
  const [dialog, setDialog] = useState<'' | 'edit' | 'disk' | 'nic'>('');
  const addresses = useNicAddresses(vm);
  const pending = pendingLine(vm.pendingChanges);
  // The server refuses changes during a migration; one hot-plug at a time.
  const locked = !!vm.migration || !!vm.hotplug;
  const lockedTitle = vm.migration
    ? 'Refused while the VM is being migrated'
    : vm.hotplug
      ? `A hot-plug of ${vm.hotplug.id} is under way`
      : undefined;
  return (
    <div class="card vm-hardware">
      <h3>Hardware</h3>
      <dl>
        <dt>Machine</dt>
        <dd class="hw-machine">{vm.machine}</dd>
        <dt>Firmware</dt>
        <dd
          class="hw-firmware"
          title={vm.efiVars ? `UEFI variables: ${vm.efiVars.pool}/${vm.efiVars.volume}` : undefined}
        >
          {firmwareLine(vm)}
        </dd>
        <dt>TPM</dt>
        <dd class="hw-tpm">{vm.tpm ? 'TPM 2.0' : 'none'}</dd>
        <dt>CPU</dt>
        <dd class="hw-cpu">{vm.cpu ? cpuLine(vm.cpu) : `${vm.vcpus} vCPU`}</dd>
        <dt>Video</dt>
        <dd class="hw-video">{videoLabel(vm.video)}</dd>
        <dt>USB tablet</dt>
        <dd class="hw-tablet">{vm.tablet === false ? 'no' : 'yes'}</dd>
        {vm.maxVcpus ? (
          <>
            <dt>Max vCPUs</dt>
            <dd class="hw-max-vcpus">{vm.maxVcpus} (hot-add)</dd>
          </>
        ) : null}
        {vm.maxMemoryMiB ? (
          <>
            <dt>Max memory</dt>
            <dd class="hw-max-memory">{vm.maxMemoryMiB} MiB (hot-add)</dd>
          </>
        ) : null}
        {vm.bootOrder?.length ? (
          <>
            <dt>Boot order</dt>
            <dd class="hw-boot-order mono">{bootOrderLine(vm.bootOrder)}</dd>
          </>
        ) : null}
        {vm.disks.map((d) => (
          <>
            <dt>{d.id}</dt>
            <dd class="disk" data-disk={d.id}>
              {fmtBytes(d.sizeBytes)} on {d.pool}
              {d.image ? ` (from ${d.image})` : ''}, <span class="disk-bus">{diskBusLabel(d.bus)}</span>,{' '}
              <span class="disk-io-line">{diskIoLine(d)}</span>
              {d.slot ? <span class="muted"> (hot-plugged)</span> : ''}
              {limitsLine(d.limits) && <span class="disk-limits-line">, limits {limitsLine(d.limits)}</span>}{' '}
              <GrowDisk vm={vm} disk={d} /> <DiskLimits vm={vm} disk={d} disabled={!!vm.migration} />{' '}
              <DiskIo vm={vm} disk={d} disabled={locked} /> <MoveDisk vm={vm} disk={d} />{' '}
              <RemoveDevice vm={vm} kind="disk" id={d.id} disabled={locked} />
            </dd>
          </>
        ))}
        {vm.networks.map((n) => (
          <>
            <dt>{n.id}</dt>
            <dd class="nic" data-nic={n.id}>
              <a class="nic-network" href={networkHref(n.network)} title="The network's page">
                {n.network}
              </a>
              {n.ip && <span class="nic-ip"> · {fixedIpLabel(n)}</span>}
              {addresses[n.id] && (
                <span
                  class="nic-address mono"
                  title={
                    addresses[n.id] === NO_ADDRESS_YET
                      ? 'OVN gives the NIC an address when its VM starts'
                      : "The NIC's address on the network (OVN)"
                  }
                >
                  {' '}
                  · {addresses[n.id]}
                </span>
              )}
              , <span class="nic-model">{nicModelLabel(n.model)}</span>, <span class="mono">{n.mac}</span>
              {n.slot ? <span class="muted"> (hot-plugged)</span> : ''}
              {n.linkDown && <span class="nic-link-down warning-text"> (disconnected)</span>}{' '}
              <NicLinkToggle vm={vm} nic={n} disabled={!!vm.migration} />{' '}
              <RemoveDevice vm={vm} kind="nic" id={n.id} disabled={locked} />
            </dd>
          </>
        ))}
        <MediaDrive vm={vm} disabled={locked} />
      </dl>
      {pending && <p class="pending-changes warning-text">{pending}</p>}
      <p class="hw-actions">
        <button
          type="button"
          data-action="edit-hardware"
          disabled={locked}
          title={lockedTitle}
          onClick={() => setDialog('edit')}
        >
          Edit hardware…
        </button>{' '}
        <button
          type="button"
          data-action="add-disk"
          disabled={locked}
          title={lockedTitle}
          onClick={() => setDialog('disk')}
        >
          Add disk…
        </button>{' '}
        <button
          type="button"
          data-action="add-nic"
          disabled={locked}
          title={lockedTitle}
          onClick={() => setDialog('nic')}
        >
          Add NIC…
        </button>
      </p>
      {dialog === 'edit' && <EditHardwareDialog vm={vm} onClose={() => setDialog('')} />}
      {dialog === 'disk' && <AddDiskDialog vm={vm} onClose={() => setDialog('')} />}
      {dialog === 'nic' && <AddNicDialog vm={vm} onClose={() => setDialog('')} />}
    </div>
  );
}

export function VmSummary({ vm }: { vm: Vm }) {
  const [editStartup, setEditStartup] = useState(false);
  const [facts, setFacts] = useState<GuestFacts | undefined>();
  const [factsError, setFactsError] = useState('');
  const connected = vm.state === 'running' && vm.agent?.status === 'connected';
  const p = vm.placement;
  const placement = [
    p?.node && `pinned to ${p.node}`,
    p?.affinityGroup && `affinity group ${p.affinityGroup}`,
    p?.antiAffinityGroup && `anti-affinity group ${p.antiAffinityGroup}`,
  ]
    .filter(Boolean)
    .join('; ');
  useEffect(() => {
    setFacts(undefined);
    setFactsError('');
    if (!connected) return;
    api<GuestFacts>('GET', `/vms/${vm.id}/guest`)
      .then(setFacts)
      .catch((e) => setFactsError((e as Error).message));
  }, [vm.id, connected]);
  return (
    <div class="cards">
      <div class="card vm-general">
        <h3>General</h3>
        <dl>
          {vm.description && (
            <>
              <dt>Description</dt>
              <dd class="vm-description">{vm.description}</dd>
            </>
          )}
          <dt>Tags</dt>
          <dd class="vm-tags-field">
            <VmTagsField vm={vm} />
          </dd>
          <dt>State</dt>
          <dd>
            <StateBadge state={vm.state} reason={vm.reason} /> {vm.reason}
          </dd>
          <dt>Host</dt>
          <dd class="vm-node">
            {vm.node ? (
              <a href={hostHref(vm.node)}>{vm.node}</a>
            ) : (
              <span class="muted">none yet (pending)</span>
            )}
          </dd>
          {placement && (
            <>
              <dt>Placement</dt>
              <dd class="placement">{placement}</dd>
            </>
          )}
          <dt>vCPU</dt>
          <dd>{vm.vcpus}</dd>
          <dt>Memory</dt>
          <dd class="vm-memory">{vm.memoryMiB} MiB</dd>
          <dt>Boot</dt>
          <dd class="mono">{Object.keys(vm.boot ?? {}).join(', ')}</dd>
          <dt>Start at host boot</dt>
          <dd
            class="vm-onboot"
            title="When its host comes back from a restart or a planned shutdown, the VM starts again if it was running: lower order first, the host's next VM the delay later"
          >
            {onBootLine(vm.onBoot)}
          </dd>
          <dt>Cloud-init</dt>
          <dd class="vm-cloud-init">{cloudInitLine(vm.cloudInit)}</dd>
        </dl>
        <p class="hw-actions">
          <button
            type="button"
            data-action="edit-startup"
            disabled={!!vm.migration}
            title={vm.migration ? 'Refused while the VM is being migrated' : undefined}
            onClick={() => setEditStartup(true)}
          >
            Edit startup and cloud-init…
          </button>
        </p>
        {editStartup && <EditStartupDialog vm={vm} onClose={() => setEditStartup(false)} />}
      </div>
      <HardwareCard vm={vm} />
      <div class="card">
        <h3>Guest</h3>
        <dl>
          <dt>Agent</dt>
          <dd>
            {vm.agent?.status}
            {vm.agent?.version ? ` (${vm.agent.flavour ?? ''} ${vm.agent.version})` : ''}
          </dd>
          {facts && (
            <>
              <dt>OS</dt>
              <dd>{facts.os?.['pretty-name'] ?? facts.os?.name ?? '?'}</dd>
              <dt>Hostname</dt>
              <dd>{facts.hostname}</dd>
              <dt>IPs</dt>
              <dd class="mono">{(facts.ips ?? []).join(', ') || '—'}</dd>
              {facts.uptimeSec != null && (
                <>
                  <dt>Uptime</dt>
                  <dd>{facts.uptimeSec} s</dd>
                </>
              )}
            </>
          )}
        </dl>
        {!connected && <p class="muted">Guest facts appear when the VM runs with a connected agent.</p>}
        {factsError && <p class="task-error">{factsError}</p>}
      </div>
      {!vm.template && <VmHaCard vm={vm} />}
    </div>
  );
}
