import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { NfError } from '../errors';

/**
 * An OVF descriptor (DMTF DSP0243, as vSphere's ovftool and VMware Workstation write it) read into the
 * virtual hardware NeuroFlow can rebuild: CPUs, memory, firmware, disks on their controllers, NICs on
 * their networks, the guest OS. What is ignored (USB, sound, video, VMCI, floppy, CD-ROM) is listed; a
 * disk controller or NIC of a kind we do not know is refused, naming the item.
 */
export interface OvfVm {
  name: string;
  description?: string;
  vcpus: number;
  /** vCPUs per socket (vmw:CoresPerSocket), when given. */
  coresPerSocket?: number;
  memoryMiB: number;
  firmware: 'bios' | 'uefi';
  secureBoot: boolean;
  /** The guest OS as VMware names it (vmw:osType, e.g. windows2019srv_64Guest), else the CIM description. */
  osType: string;
  /** Windows guests get emulated devices until VirtIO drivers are installed. */
  windows: boolean;
  disks: OvfDisk[];
  nics: OvfNic[];
  /** Hardware of the source that is not brought across, for the report. */
  ignored: string[];
}

export interface OvfDisk {
  /** The Item's ElementName ("Hard disk 1"). */
  label: string;
  /** The file (References/File href) holding the disk, a plain file name in the package. */
  file: string;
  /** Declared size of that file (bytes), when given. */
  fileSize?: number;
  /** The disk's capacity in bytes. */
  capacityBytes: number;
  /** Its controller: scsi (lsilogic, lsilogicsas, pvscsi, buslogic), sata, ide or nvme. */
  controller: 'scsi' | 'sata' | 'ide' | 'nvme';
  controllerModel: string;
}

export interface OvfNic {
  label: string;
  /** E1000, E1000e, VmxNet3, PCNet32 … as the OVF names it. */
  model: string;
  /** The OVF network it is connected to. */
  network: string;
}

/** CIM ResourceType values (DSP0243 / CIM_ResourceAllocationSettingData). */
const RT = {
  other: 1,
  cpu: 3,
  memory: 4,
  ide: 5,
  scsi: 6,
  nic: 10,
  floppy: 14,
  cdrom: 15,
  dvd: 16,
  disk: 17,
  otherStorage: 20,
  serial: 21,
  parallel: 22,
  usb: 23,
  video: 24,
} as const;

const SCSI_MODELS = ['lsilogic', 'lsilogicsas', 'virtualscsi', 'buslogic'];
const NIC_MODELS = ['e1000', 'e1000e', 'vmxnet3', 'vmxnet2', 'vmxnet', 'pcnet32', 'flexible'];

type Node = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@',
  removeNSPrefix: true,
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  isArray: (name) =>
    ['Item', 'StorageItem', 'EthernetPortItem', 'File', 'Disk', 'Network', 'Config'].includes(name),
  processEntities: false,
});

const list = (v: unknown): Node[] => (Array.isArray(v) ? (v as Node[]) : v ? [v as Node] : []);
const text = (v: unknown): string | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'object') return text((v as Node)['#text']);
  const s = String(v).trim();
  return s === '' ? undefined : s;
};

/** Bytes in one unit of an OVF allocation unit string ("byte * 2^20", "byte", "MegaBytes", "GB"). */
export function unitBytes(units: string | undefined): number {
  if (!units) return 1;
  const u = units.replace(/\s+/g, '').toLowerCase();
  const pow = /^byte\*2\^(\d+)$/.exec(u);
  if (pow) return 2 ** Number(pow[1]);
  const named: Record<string, number> = {
    byte: 1,
    bytes: 1,
    kilobytes: 1024,
    kb: 1024,
    megabytes: 1024 ** 2,
    mb: 1024 ** 2,
    gigabytes: 1024 ** 3,
    gb: 1024 ** 3,
    terabytes: 1024 ** 4,
    tb: 1024 ** 4,
  };
  const n = named[u];
  if (n === undefined) throw new NfError('validation_failed', `OVF: unknown allocation unit "${units}"`);
  return n;
}

/** A plain file name in the package: no directories, nothing that climbs out of it. */
export function packageFileName(href: string, what: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9 ._+-]{0,254}$/.test(href) || href.includes('..'))
    throw new NfError('validation_failed', `${what}: "${href}" is not a plain file name of the package`);
  return href;
}

export function parseOvf(xml: string): OvfVm {
  const valid = XMLValidator.validate(xml);
  if (valid !== true)
    throw new NfError(
      'validation_failed',
      `the OVF descriptor is not XML: ${valid.err.msg} (line ${valid.err.line})`,
    );
  if (/<!DOCTYPE|<!ENTITY/i.test(xml))
    throw new NfError('validation_failed', 'the OVF descriptor declares a DOCTYPE or entities; refused');
  const root = (parser.parse(xml) as Node).Envelope as Node | undefined;
  if (!root) throw new NfError('validation_failed', 'the OVF descriptor has no Envelope element');
  const bad = (msg: string) => new NfError('validation_failed', `OVF: ${msg}`);

  const files = new Map<string, { href: string; size?: number }>();
  for (const f of list((root.References as Node | undefined)?.File)) {
    const id = f['@id'] as string | undefined;
    const href = f['@href'] as string | undefined;
    if (!id || !href) throw bad('a File without an id or href');
    if (/^[a-z]+:/i.test(href))
      throw bad(`file ${id} is at a URL (${href}); only files in the package are imported`);
    files.set(id, {
      href: packageFileName(href, `file ${id}`),
      size: f['@size'] !== undefined ? Number(f['@size']) : undefined,
    });
  }
  const diskDefs = new Map<string, { fileRef: string; capacityBytes: number }>();
  for (const d of list((root.DiskSection as Node | undefined)?.Disk)) {
    const id = d['@diskId'] as string | undefined;
    const fileRef = d['@fileRef'] as string | undefined;
    if (!id || !fileRef) throw bad('a Disk without a diskId or fileRef');
    const capacity = Number(d['@capacity']) * unitBytes(d['@capacityAllocationUnits'] as string | undefined);
    if (!Number.isFinite(capacity) || capacity <= 0) throw bad(`disk ${id} has no valid capacity`);
    diskDefs.set(id, { fileRef, capacityBytes: capacity });
  }

  // One VirtualSystem (a VirtualSystemCollection of several, a vApp, is not imported as one VM).
  const systems = list(root.VirtualSystem);
  if (systems.length !== 1)
    throw bad(
      systems.length === 0
        ? 'no VirtualSystem (a vApp of several VMs is not supported: export each VM)'
        : `${systems.length} VirtualSystems; export each VM on its own`,
    );
  const vs = systems[0]!;
  const name = text(vs.Name) ?? (vs['@id'] as string | undefined) ?? 'imported';
  const annotation = text((vs.AnnotationSection as Node | undefined)?.Annotation);
  const os = vs.OperatingSystemSection as Node | undefined;
  const osType = (os?.['@osType'] as string | undefined) ?? text(os?.Description) ?? 'other';
  const osText = `${osType} ${text(os?.Description) ?? ''}`.toLowerCase();
  const windows = /windows|win\d|winnet|winxp|longhorn/.test(osText);

  const hw = vs.VirtualHardwareSection as Node | undefined;
  if (!hw) throw bad('the VirtualSystem has no VirtualHardwareSection');
  const items = [...list(hw.Item), ...list(hw.StorageItem), ...list(hw.EthernetPortItem)];
  const configs = new Map<string, string>();
  for (const c of list(hw.Config)) configs.set(String(c['@key']), String(c['@value']));
  const firmware = configs.get('firmware') === 'efi' ? 'uefi' : 'bios';
  const secureBoot = firmware === 'uefi' && configs.get('uefi.secureBoot.enabled') === 'true';

  const field = (it: Node, k: string) => text(it[k]);
  const rtype = (it: Node) => Number(field(it, 'ResourceType'));
  const label = (it: Node) =>
    field(it, 'ElementName') ?? field(it, 'Caption') ?? `item ${field(it, 'InstanceID')}`;
  const controllers = new Map<string, { kind: OvfDisk['controller']; model: string }>();
  const ignored: string[] = [];
  let vcpus = 0;
  let coresPerSocket: number | undefined;
  let memoryMiB = 0;
  for (const it of items) {
    const type = rtype(it);
    const sub = (field(it, 'ResourceSubType') ?? '').toLowerCase();
    const id = field(it, 'InstanceID') ?? '';
    if (type === RT.cpu) {
      vcpus = Number(field(it, 'VirtualQuantity'));
      const cps = it['@CoresPerSocket'] ?? (it.CoresPerSocket as Node | undefined);
      if (cps !== undefined) coresPerSocket = Number(text(cps));
    } else if (type === RT.memory) {
      const bytes =
        Number(field(it, 'VirtualQuantity')) * unitBytes(field(it, 'AllocationUnits') ?? 'byte * 2^20');
      memoryMiB = Math.round(bytes / 1024 ** 2);
    } else if (type === RT.scsi) {
      if (!SCSI_MODELS.includes(sub)) throw bad(`${label(it)}: SCSI controller "${sub}" is not known`);
      controllers.set(id, { kind: 'scsi', model: sub });
    } else if (type === RT.ide) controllers.set(id, { kind: 'ide', model: sub || 'piix4' });
    else if (type === RT.otherStorage) {
      if (sub.includes('ahci') || sub.includes('sata')) controllers.set(id, { kind: 'sata', model: sub });
      else if (sub.includes('nvme')) controllers.set(id, { kind: 'nvme', model: sub });
      else throw bad(`${label(it)}: storage controller "${sub}" is not known`);
    } else if (![RT.disk, RT.nic].includes(type as 17 | 10)) {
      const known: Record<number, string> = {
        [RT.floppy]: 'floppy drive',
        [RT.cdrom]: 'CD/DVD drive',
        [RT.dvd]: 'CD/DVD drive',
        [RT.serial]: 'serial port',
        [RT.parallel]: 'parallel port',
        [RT.usb]: 'USB controller',
        [RT.video]: 'video card',
        [RT.other]: sub || 'device',
      };
      const what = known[type];
      if (!what) throw bad(`${label(it)}: hardware of resource type ${type} is not known`);
      ignored.push(`${label(it)} (${what})`);
    }
  }
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > 256)
    throw bad(`the VM has ${vcpus} vCPUs; 1 to 256 are imported`);
  if (!Number.isInteger(memoryMiB) || memoryMiB < 16) throw bad(`the VM has ${memoryMiB} MiB of memory`);
  if (coresPerSocket !== undefined && (!Number.isInteger(coresPerSocket) || vcpus % coresPerSocket !== 0))
    coresPerSocket = undefined;

  const disks: (OvfDisk & { order: string })[] = [];
  const nics: OvfNic[] = [];
  for (const it of items) {
    const type = rtype(it);
    if (type === RT.disk) {
      const res = field(it, 'HostResource') ?? '';
      const m = /^ovf:\/(?:disk|file)\/(.+)$/.exec(res);
      if (!m) throw bad(`${label(it)}: HostResource "${res}" names no disk`);
      const def = diskDefs.get(m[1]!);
      const file = def ? files.get(def.fileRef) : files.get(m[1]!);
      if (!def || !file) throw bad(`${label(it)}: disk "${m[1]}" is not in the DiskSection and References`);
      const parent = controllers.get(field(it, 'Parent') ?? '');
      if (!parent) throw bad(`${label(it)}: its controller (${field(it, 'Parent')}) is not described`);
      disks.push({
        label: label(it),
        file: file.href,
        ...(file.size !== undefined ? { fileSize: file.size } : {}),
        capacityBytes: def.capacityBytes,
        controller: parent.kind,
        controllerModel: parent.model,
        order: `${parent.kind === 'ide' ? 0 : 1}-${field(it, 'Parent')}-${(field(it, 'AddressOnParent') ?? '0').padStart(3, '0')}`,
      });
    } else if (type === RT.nic) {
      const model = field(it, 'ResourceSubType') ?? 'E1000';
      if (!NIC_MODELS.includes(model.toLowerCase()))
        throw bad(`${label(it)}: network adapter "${model}" is not known`);
      nics.push({ label: label(it), model, network: field(it, 'Connection') ?? 'VM Network' });
    }
  }
  if (disks.length === 0) throw bad('the VM has no disks');
  if (disks.length > 16) throw bad(`the VM has ${disks.length} disks; 16 are imported at most`);
  if (nics.length > 8) throw bad(`the VM has ${nics.length} network adapters; 8 are imported at most`);
  disks.sort((a, b) => a.order.localeCompare(b.order));
  return {
    name,
    ...(annotation ? { description: annotation.slice(0, 1024) } : {}),
    vcpus,
    ...(coresPerSocket && coresPerSocket !== vcpus ? { coresPerSocket } : {}),
    memoryMiB,
    firmware,
    secureBoot,
    osType,
    windows,
    disks: disks.map(({ order: _o, ...d }) => d),
    nics,
    ignored,
  };
}
