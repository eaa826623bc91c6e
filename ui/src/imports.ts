import { fmtBytes, type Task } from './api';

/** The task type of an import from VMware (POST /imports). */
export const IMPORT = 'vm.import';

/** How the imported VM's disks and NICs are attached (POST /imports `devices`). */
export type DeviceMode = 'auto' | 'virtio' | 'emulated';

export const DEVICE_MODES: [DeviceMode, string][] = [
  ['auto', 'Automatic: VirtIO for Linux, SATA + e1000e for Windows'],
  ['virtio', 'VirtIO disks and NICs (the guest needs VirtIO drivers)'],
  ['emulated', 'Emulated: SATA disks, e1000e NICs'],
];

/** Where the package comes from: a file uploaded from the browser, a path on the host, an http(s) URL. */
export type SourceKind = 'upload' | 'path' | 'url';

/** POST /imports/inspect: what an import would make (src/controller/imports.ts ImportPlan). */
export interface ImportPlan {
  kind: 'ova' | 'ovf' | 'vmdk';
  name: string;
  source: { osType: string; windows: boolean; firmware: string; secureBoot: boolean; ignored: string[] };
  vm: {
    vcpus: number;
    memoryMiB: number;
    machine: string;
    firmware: string;
    secureBoot: boolean;
    cpu?: { model: string; sockets: number };
    disks: { file: string; label: string; sizeBytes: number; bus: string; from: string }[];
    networks: { network: string; model: string; from: string; label: string; sourceNetwork?: string }[];
  };
  pool: string;
  /** Checked against the manifest: file → algorithm. */
  verified: Record<string, string>;
  notes: string[];
}

/** The review step's choices. */
export interface ImportForm {
  name: string;
  pool: string;
  devices: DeviceMode;
  /** OVF network → NeuroFlow network, as the admin chose them (unchosen: the plan's). */
  networkMap: Record<string, string>;
  /** A bare VMDK only (an OVF says them itself). */
  vcpus: string;
  memoryMiB: string;
}

export const DEFAULT_IMPORT_FORM: ImportForm = {
  name: '',
  pool: 'local',
  devices: 'auto',
  networkMap: {},
  vcpus: '1',
  memoryMiB: '1024',
};

/** The API's VM name rule (src/api/routes/imports.ts). */
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/;

/** Why the source step cannot go on ('' when it can). */
export function sourceProblem(
  kind: SourceKind,
  v: { file?: { name: string }; path: string; url: string },
): string {
  if (kind === 'upload') {
    if (!v.file) return 'Choose an OVA or VMDK file.';
    if (!/\.(ova|vmdk)$/i.test(v.file.name))
      return `${v.file.name}: an OVA or a VMDK (an OVF names its disks beside it: pack it as an OVA, or give its path on the host).`;
    return '';
  }
  if (kind === 'path') return v.path.trim().startsWith('/') ? '' : 'Give an absolute path on the host.';
  return /^https?:\/\/\S+$/i.test(v.url.trim()) ? '' : 'Give an http:// or https:// URL.';
}

/**
 * The name an upload is stored under (POST /imports/files?filename=): the API takes plain names only
 * (letters, digits, space . _ + -, ending .ova/.ovf/.vmdk), so a browser's "web01 (prod).ova" becomes
 * "web01-prod-.ova".
 */
export function uploadName(file: string): string {
  const m = /^(.*?)(\.(?:ova|ovf|vmdk))$/i.exec(file);
  const stem = (m ? m[1]! : file).replace(/[^A-Za-z0-9 ._+-]+/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  return `${(stem || 'upload').slice(0, 200)}${m ? m[2]!.toLowerCase() : '.ova'}`;
}

/** Why the review's choices cannot be sent ('' when they can). */
export function formProblem(f: ImportForm, kind?: ImportPlan['kind']): string {
  if (!NAME.test(f.name))
    return 'Name: letters, digits, . _ - (starting with a letter or digit), up to 63 characters.';
  if (kind === 'vmdk') {
    const v = Number(f.vcpus);
    if (!/^\d+$/.test(f.vcpus.trim()) || v < 1 || v > 256) return 'vCPUs: a whole number from 1 to 256.';
    const m = Number(f.memoryMiB);
    if (!/^\d+$/.test(f.memoryMiB.trim()) || m < 16) return 'Memory: a whole number of MiB, 16 or more.';
  }
  return '';
}

/**
 * The body of POST /imports/inspect and POST /imports. Before the first plan (`kind` unknown) only the
 * source goes, so the API says the OVF's own name; the vCPUs and memory go for a bare VMDK only.
 */
export function importBody(
  source: { path: string } | { url: string },
  f: ImportForm,
  kind?: ImportPlan['kind'],
): Record<string, unknown> {
  const body: Record<string, unknown> = { source };
  if (!kind) return body;
  body.name = f.name;
  body.pool = f.pool;
  body.devices = f.devices;
  if (Object.keys(f.networkMap).length > 0) body.networkMap = f.networkMap;
  if (kind === 'vmdk') {
    body.vcpus = Number(f.vcpus);
    body.memoryMiB = Number(f.memoryMiB);
  }
  return body;
}

/**
 * The OVF network of a plan's NIC, out of its `from` ('VmxNet3 on "VM Network"'): the plan names it
 * nowhere else.
 */
export function ovfNetwork(from: string): string | undefined {
  return /^.*? on "(.*)"$/.exec(from)?.[1];
}

/** The OVF networks the plan's NICs are on, each once, in order: the network mapping's rows. */
export function ovfNetworks(plan: Pick<ImportPlan, 'vm'>): string[] {
  const out: string[] = [];
  for (const n of plan.vm.networks) {
    const net = n.sourceNetwork ?? ovfNetwork(n.from);
    if (net !== undefined && !out.includes(net)) out.push(net);
  }
  return out;
}

/** The NeuroFlow network an OVF network goes to: the admin's choice, else what the plan says. */
export function mappedNetwork(plan: Pick<ImportPlan, 'vm'>, f: Pick<ImportForm, 'networkMap'>, net: string) {
  return (
    f.networkMap[net] ??
    plan.vm.networks.find((n) => (n.sourceNetwork ?? ovfNetwork(n.from)) === net)?.network ??
    'default'
  );
}

/** "Hard disk 1: scsi (virtualscsi) → virtio-blk, 12.0 MiB". */
export function diskLine(d: ImportPlan['vm']['disks'][number]): string {
  return `${d.label}: ${d.from} → ${d.bus}, ${d.sizeBytes > 0 ? fmtBytes(d.sizeBytes) : 'size known once converted'}`;
}

/** 'Network adapter 1: VmxNet3 on "VM Network" → virtio on default'. */
export function nicLine(n: ImportPlan['vm']['networks'][number]): string {
  return `${n.label}: ${n.from} → ${n.model} on ${n.network}`;
}

/** "2 vCPU (2 sockets)". */
export function cpuLine(vm: ImportPlan['vm']): string {
  return `${vm.vcpus} vCPU${vm.cpu && vm.cpu.sockets > 1 ? ` (${vm.cpu.sockets} sockets)` : ''}`;
}

/** "BIOS", "UEFI", "UEFI with Secure Boot". */
export function firmwareLine(p: { firmware: string; secureBoot: boolean }): string {
  return p.firmware === 'uefi' ? `UEFI${p.secureBoot ? ' with Secure Boot' : ''}` : p.firmware.toUpperCase();
}

/** The plan's notes without the one repeating what is not brought across (shown with the source). */
export function planNotes(plan: Pick<ImportPlan, 'notes' | 'source'>): string[] {
  const ignored = `not brought across: ${plan.source.ignored.join(', ')}`;
  return plan.notes.filter((n) => n !== ignored);
}

/** A vm.import task's figures: the disk being converted, bytes converted of all disks. */
export interface ImportDetails {
  source?: string;
  kind?: string;
  disk?: string;
  bytesConverted?: number;
  bytesTotal?: number;
}

/** A finished vm.import task's result: the new VM (set once recorded, also when its start failed). */
export interface ImportResult {
  vm: string;
  name: string;
  notes: string[];
}

export function importDetails(t: Task): ImportDetails | undefined {
  return t.type === IMPORT && t.details ? (t.details as ImportDetails) : undefined;
}

export function importResult(t: Task): ImportResult | undefined {
  const r = t.type === IMPORT ? (t.result as Partial<ImportResult> | undefined) : undefined;
  return r && typeof r.vm === 'string' && typeof r.name === 'string'
    ? { vm: r.vm, name: r.name, notes: r.notes ?? [] }
    : undefined;
}

/** "Hard disk 1: 12.0 MiB of 76.0 MiB converted"; "converting web01.ova" before the first figures. */
export function importProgress(d: ImportDetails): string {
  if (d.bytesTotal === undefined) return `converting ${d.source ?? 'the disks'}`;
  return `${d.disk ? `${d.disk}: ` : ''}${fmtBytes(d.bytesConverted ?? 0)} of ${fmtBytes(d.bytesTotal)} converted`;
}

/** The name in the API's refusal of a taken name ('a VM named "web01" already exists; …'). */
export function takenName(message: string): string | undefined {
  return /a VM named "([^"]+)" already exists/.exec(message)?.[1];
}

/**
 * What the source is by its name, for the choices sent before the API answered with a plan (its first
 * check refused the OVF's own name): a VMDK gets vCPUs and memory.
 */
export function guessKind(name: string): ImportPlan['kind'] {
  return /\.vmdk$/i.test(name) ? 'vmdk' : /\.ovf$/i.test(name) ? 'ovf' : 'ova';
}
