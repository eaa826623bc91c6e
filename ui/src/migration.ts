import {
  type EvacuationDetails,
  type EvacuationResult,
  fmtBytes,
  type HostNode,
  type MigrationDetails,
  type MigrationResult,
  type Task,
  type Vm,
  type VmMigration,
} from './api';
import { clock } from './format';

/** The task type of a live migration. */
export const MIGRATE = 'vm.migrate';

export function migrationDetails(t: Task): MigrationDetails | undefined {
  return t.type === MIGRATE && t.details ? (t.details as unknown as MigrationDetails) : undefined;
}

export function migrationResult(t: Task): MigrationResult | undefined {
  return t.type === MIGRATE && t.result ? (t.result as unknown as MigrationResult) : undefined;
}

/** One compact line: "memory · RAM 512.0 MiB of 2.0 GiB, 1.0 GiB left, dirty 12.0 MiB/s, … · disks …". */
export function migrationProgress(d: MigrationDetails): string {
  const parts: string[] = [d.phase];
  if (d.ram) {
    const r = d.ram;
    parts.push(
      `RAM ${fmtBytes(r.transferredBytes)} of ${fmtBytes(r.totalBytes)}, ${fmtBytes(r.remainingBytes)} left, ` +
        `dirty ${fmtBytes(r.dirtyRateBytesPerSec)}/s, iteration ${r.iteration}, ` +
        `expected downtime ${Math.round(r.expectedDowntimeMs)} ms`,
    );
  }
  if (d.disks) parts.push(`disks ${fmtBytes(d.disks.doneBytes)} of ${fmtBytes(d.disks.totalBytes)}`);
  return parts.join(' · ');
}

/** "downtime 12 ms, total 8.4 s": the guest's pause as QEMU measured it, and the whole task. */
export function migrationOutcome(r: MigrationResult): string {
  return `downtime ${Math.round(r.downtimeMs)} ms, total ${(r.totalMs / 1000).toFixed(1)} s`;
}

export interface TargetOption {
  value: string;
  label: string;
  disabled: boolean;
}

/**
 * The migrate dialog's host choices: the scheduler first, then every connected host but the VM's own;
 * a host in maintenance (no new VMs) or not ready is listed but cannot be chosen.
 */
export function migrationTargets(nodes: HostNode[], vm: Pick<Vm, 'node'>): TargetOption[] {
  const hosts = nodes
    .filter((n) => n.name !== vm.node && n.connected !== false)
    .sort((a, b) => a.name.localeCompare(b.name))
    .map((n) => ({
      value: n.name,
      label:
        n.state === 'ready'
          ? n.name
          : `${n.name} (${n.state === 'maintenance' ? 'maintenance' : 'not ready'})`,
      disabled: n.state !== 'ready',
    }));
  return [{ value: '', label: 'Automatic (scheduler picks)', disabled: false }, ...hosts];
}

/**
 * Whether a migration of this VM is under way: the VM says so (its `migration`), or a running
 * vm.migrate task targets the VM's id or name.
 */
export function migrating(tasks: Task[], vm: Pick<Vm, 'id' | 'name' | 'migration'>): boolean {
  return (
    !!vm.migration ||
    tasks.some(
      (t) => t.type === MIGRATE && t.status === 'running' && (t.target === vm.id || t.target === vm.name),
    )
  );
}

/** The task of a VM's migration under way, if the store holds it. */
export function migrationTask(tasks: Task[], m: VmMigration | undefined): Task | undefined {
  return m ? tasks.find((t) => t.id === m.taskId) : undefined;
}

/**
 * The VM page's banner line: "Migrating from h1 to h2 since 09:05:03", then the phase and percentage
 * while the task (if known) runs: " · memory · 40%".
 */
export function migrationBanner(m: VmMigration, t?: Task): string {
  const parts = [`Migrating from ${m.source} to ${m.target} since ${clock(m.startedAt)}`];
  if (t?.status === 'running') {
    const d = migrationDetails(t);
    if (d) parts.push(d.phase);
    parts.push(`${Math.round(t.progress * 100)}%`);
  }
  return parts.join(' · ');
}

/** The task type of a host's evacuation (entering maintenance mode). */
export const EVACUATE = 'node.evacuate';

export function evacuationDetails(t: Task): EvacuationDetails | undefined {
  return t.type === EVACUATE && t.details ? (t.details as unknown as EvacuationDetails) : undefined;
}

export function evacuationResult(t: Task): EvacuationResult | undefined {
  return t.type === EVACUATE && t.result ? (t.result as unknown as EvacuationResult) : undefined;
}

/** "2/3 moved · moving web1, web2" ("planning" before the VMs are counted). */
export function evacuationProgress(d: EvacuationDetails): string {
  if (d.phase === 'planning') return 'planning';
  const parts = [`${d.moved?.length ?? 0}/${d.total ?? '?'} moved`];
  if (d.moving?.length) parts.push(`moving ${d.moving.join(', ')}`);
  return parts.join(' · ');
}

/** "3 moved, 1 stayed". */
export function evacuationOutcome(r: EvacuationResult): string {
  return `${r.moved} moved, ${r.stayed} stayed`;
}

/** The running evacuation of a host, if any. */
export function evacuationOf(tasks: Task[], host: string): Task | undefined {
  return tasks.find((t) => t.type === EVACUATE && t.status === 'running' && t.target === host);
}
