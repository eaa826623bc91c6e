import { NfError } from '../errors';
import { CPU_LEVELS } from '../vmm/types';
import type { NodeRecord } from './records';

/** The cluster's default CPU model when none is set: chosen from the hosts (see clusterCpuModel). */
export const AUTO_CPU_MODEL = 'auto';

/** The CPU model new VMs get when they name none, and why. */
export interface CpuDefault {
  /** The setting: `auto` or a model. */
  defaultModel: string;
  /** What a new VM gets now. */
  model: string;
  why: string;
}

/**
 * The model a new VM without one gets. `auto` keeps the host CPU whole while every host has the same
 * (the same CPU under KVM, the same QEMU under TCG): VMs see every feature and still move between the
 * hosts. Hosts that differ get the highest x86-64 level every one of them runs, so a VM created now
 * can move to any of them (as vSphere's EVC baseline does, chosen for the admin). A model set by an
 * admin is taken as it is, with a warning when some hosts cannot run it.
 */
export function clusterCpuModel(setting: string | undefined, nodes: NodeRecord[]): CpuDefault {
  const defaultModel = setting ?? AUTO_CPU_MODEL;
  const hosts = nodes.filter((n) => n.info);
  if (defaultModel !== AUTO_CPU_MODEL) {
    const cannot = CPU_LEVELS.includes(defaultModel)
      ? hosts.filter((n) => n.info!.cpuLevels && !n.info!.cpuLevels.includes(defaultModel)).map((n) => n.name)
      : [];
    return {
      defaultModel,
      model: defaultModel,
      why:
        cannot.length > 0
          ? `set by an administrator; ${cannot.join(', ')} cannot run ${defaultModel}: VMs with it do not start there`
          : 'set by an administrator',
    };
  }
  if (hosts.length === 0)
    return { defaultModel, model: 'host', why: 'no host has reported its CPU yet: the host CPU' };
  const first = hosts[0]!.info!;
  const same = hosts.every(
    (n) =>
      n.info!.accelerator === first.accelerator &&
      (first.accelerator === 'tcg'
        ? n.info!.qemuVersion === first.qemuVersion
        : n.info!.cpuModel === first.cpuModel),
  );
  if (same)
    return {
      defaultModel,
      model: 'host',
      why:
        hosts.length === 1
          ? `one host (${first.accelerator === 'kvm' ? first.cpuModel : `QEMU ${first.qemuVersion} under TCG`}): VMs get its CPU whole; once a host with another CPU joins, new VMs get the highest level every host runs`
          : `every host has the same CPU (${first.accelerator === 'kvm' ? first.cpuModel : `QEMU ${first.qemuVersion} under TCG`}): VMs get it whole and still move between them`,
    };
  const levels = CPU_LEVELS.filter((l) => hosts.every((n) => n.info!.cpuLevels?.includes(l)));
  const best = levels.at(-1);
  if (!best)
    return {
      defaultModel,
      model: 'qemu64',
      why: 'the hosts differ and share no x86-64 level above the baseline: qemu64 (x86-64-v1)',
    };
  return {
    defaultModel,
    model: best,
    why: `the hosts have different CPUs: ${best} is the highest level every one of the ${hosts.length} hosts runs, so VMs can move between them`,
  };
}

/** A setting the API takes: auto, host, a level or a QEMU model name. */
export function checkCpuDefault(model: string): void {
  const bad =
    !/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(model) ||
    (/^x86-64-v/.test(model) && !CPU_LEVELS.includes(model));
  if (bad)
    throw new NfError(
      'validation_failed',
      `defaultCpuModel "${model}": use auto, host, ${CPU_LEVELS.join(', ')} or a QEMU model name`,
    );
}
