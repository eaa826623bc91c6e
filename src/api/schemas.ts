import { z } from '@hono/zod-openapi';
import { DISK_AIO_MODES, DISK_CACHE_MODES } from '../vmm/types';

/**
 * The API's request and response shapes. The same schemas validate requests (unknown fields rejected)
 * and generate /api/v1/openapi.json, so the document cannot drift from what the server accepts.
 */

export const NAME = z
  .string()
  .regex(
    /^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/,
    'use 1-63 letters, digits, ".", "_" or "-", starting with a letter or digit',
  )
  .refine(
    (v) => !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(v),
    'a name must not look like a UUID (ids are UUIDs)',
  );

/** qemu-img looks a snapshot up by id before name, and ids are numbers: a numeric name could hit another. */
const SNAPSHOT_NAME = z
  .string()
  .regex(
    /^[a-zA-Z][a-zA-Z0-9._-]{0,62}$/,
    'use 1-63 letters, digits, ".", "_" or "-", starting with a letter',
  );

// No regex flags: the OpenAPI pattern must mean the same to every generator.
const MAC = z
  .string()
  .regex(/^([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}$/, 'a MAC address like 52:54:00:12:34:56')
  .refine(
    (m) => (Number.parseInt(m.slice(0, 2), 16) & 1) === 0,
    'a unicast MAC address (the first byte even)',
  );
const ABS_PATH = z.string().min(1).max(4096).regex(/^\//, 'an absolute path on the host');
/**
 * A kernel or initrd path: no commas. QEMU splits -initrd on commas for multiboot kernels (module
 * lists), so a comma in a path could add modules with arguments; refusing it is simpler than escaping
 * per kernel kind.
 */
const BOOT_PATH = ABS_PATH.regex(/^[^,]*$/, 'a path without commas (QEMU reads them as separators)');

export const DiskBusSchema = z.enum(['virtio-blk', 'virtio-scsi', 'sata', 'ide']);
export const DiskCacheSchema = z.enum(DISK_CACHE_MODES).openapi({
  description:
    'QEMU cache mode: none (O_DIRECT, the safe choice for production), writeback (default: the host page cache), writethrough, directsync, unsafe (flushes ignored: scratch disks only)',
});
export const DiskAioSchema = z.enum(DISK_AIO_MODES).openapi({
  description:
    'AIO engine of a file-backed disk: threads (default), native (needs cache none or directsync), io_uring',
});
export const NicModelSchema = z.enum(['virtio', 'e1000e', 'rtl8139', 'vmxnet3']);
export const VideoSchema = z.enum(['std', 'virtio', 'qxl', 'cirrus', 'none']);
/** A QEMU CPU model or flag name: letters, digits and . _ - only (no comma can add an option). */
const CPU_NAME = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'a CPU model name like x86-64-v2 or EPYC-v3');
const CPU_FLAG = /^[a-z0-9][a-z0-9._-]{0,31}$/;

export const OnBootInput = z
  .strictObject({
    enabled: z.boolean().default(true),
    order: z
      .number()
      .int()
      .min(0)
      .max(1000)
      .default(0)
      .openapi({ description: "Lower starts first on the VM's host" }),
    delaySec: z
      .number()
      .int()
      .min(0)
      .max(600)
      .default(0)
      .openapi({ description: 'Wait this long after starting it before the next VM of the host' }),
  })
  .openapi('OnBoot');

const HOSTNAME = z
  .string()
  .max(253)
  .regex(
    /^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(\.[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/,
    'a host name',
  );

export const CloudInitInput = z
  .strictObject({
    hostname: HOSTNAME.optional().openapi({ description: "The guest's host name (default: the VM's name)" }),
    sshKeys: z
      .array(
        z
          .string()
          .max(16_384)
          .regex(
            /^(ssh-|ecdsa-|sk-)[a-z0-9@.-]+ [A-Za-z0-9+/=]+( [^\n]*)?$/,
            'an OpenSSH public key on one line',
          ),
      )
      .max(32)
      .optional()
      .openapi({ description: "Public keys for root's authorized_keys" }),
    password: z
      .string()
      .min(1)
      .max(256)
      .regex(/^[^\n\r]*$/, 'one line')
      .optional()
      .openapi({ description: "root's password; kept only as a SHA-512 crypt hash, never shown" }),
    userData: z
      .string()
      .max(64 * 1024)
      .optional()
      .openapi({
        description: 'A whole user-data document instead of sshKeys/password (not shown by the API)',
      }),
    networkConfig: z
      .string()
      .max(64 * 1024)
      .optional()
      .openapi({ description: 'A network-config (v2) document' }),
  })
  .openapi('CloudInitInput');

export const CpuInput = z
  .strictObject({
    model: CPU_NAME.optional().openapi({
      description:
        'host (default: the host CPU, max under TCG), x86-64-v2, x86-64-v3, x86-64-v4 (portable levels: the VM moves between hosts that have it), or a QEMU model (EPYC-v3, Skylake-Server-v3, …)',
    }),
    sockets: z.number().int().min(1).max(16).optional(),
    cores: z.number().int().min(1).max(256).optional(),
    threads: z.number().int().min(1).max(2).optional(),
    flags: z
      .record(z.string().regex(CPU_FLAG, 'a CPU flag name like avx2 or pcid'), z.boolean())
      .optional()
      .openapi({ description: 'Flags forced on (true) or off (false) on top of the model, by QEMU name' }),
  })
  .openapi('CpuInput');

export const DiskInput = z
  .strictObject({
    sizeGiB: z
      .number()
      .min(1 / 1024)
      .max(65536)
      .refine((g) => Number.isInteger(g * 1024), 'a whole number of MiB (GiB × 1024 must be an integer)')
      .optional()
      .openapi({ description: 'Size of a new blank disk, or the new size of a clone (GiB)' }),
    image: z
      .string()
      .min(1)
      .optional()
      .openapi({ description: 'Name or id of a disk image to clone (copy-on-write)' }),
    pool: NAME.optional().openapi({ description: 'Storage pool (default "local")' }),
    bus: DiskBusSchema.optional().openapi({
      description:
        'virtio-blk (default), virtio-scsi, sata (AHCI: guests without VirtIO drivers), ide (machine pc only)',
    }),
    cache: DiskCacheSchema.optional(),
    aio: DiskAioSchema.optional(),
  })
  .refine((d) => d.sizeGiB !== undefined || d.image !== undefined, {
    message: 'a disk needs sizeGiB, image, or both',
  })
  .openapi('DiskInput');

export const NicInput = z
  .strictObject({
    network: NAME,
    mac: MAC.optional(),
    ip: z
      .string()
      .regex(/^\d{1,3}(\.\d{1,3}){3}$/, 'an IPv4 address')
      .optional()
      .openapi({ description: "A fixed address on an overlay network: OVN's DHCP hands out this one" }),
    model: NicModelSchema.optional().openapi({
      description: 'virtio (default), e1000e, rtl8139, vmxnet3 (guests without VirtIO drivers)',
    }),
  })
  .openapi('NicInput');

export const BootInput = z
  .union([
    z.strictObject({
      kernel: BOOT_PATH,
      initrd: BOOT_PATH.optional(),
      cmdline: z.string().max(4096).optional(),
    }),
    z.strictObject({
      cdrom: z
        .string()
        .min(1)
        .openapi({ description: 'ISO image name/id, or an absolute path to an ISO on the host' }),
    }),
    z.strictObject({ disk: z.number().int().min(0).max(15) }),
  ])
  .openapi('BootInput');

/** A VM tag: lowercase, as `env:prod` or `backup-nightly`. */
export const TAG = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_.:-]{0,62}$/, 'a tag: lowercase letters, digits, _ . : - (up to 63)');
const GROUP = z.string().regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, 'letters, digits, _ . - (up to 63)');

export const Placement = z
  .strictObject({
    node: z.string().min(1).max(253).optional().openapi({ description: 'Run on this host only' }),
    affinityGroup: GROUP.optional().openapi({ description: 'VMs sharing this name run on the same host' }),
    antiAffinityGroup: GROUP.optional().openapi({
      description: 'VMs sharing this name run on different hosts',
    }),
  })
  .openapi('Placement');

/** A VM's HA policy as a request gives it: any subset of the fields. */
export const HaPolicyInput = z
  .strictObject({
    enabled: z.boolean().optional(),
    priority: z.enum(['high', 'medium', 'low']).optional(),
    restartOrder: z.number().int().min(0).max(1000).optional(),
    isolationResponse: z.enum(['poweroff', 'shutdown', 'leave']).optional(),
    monitoring: z.boolean().optional(),
  })
  .openapi('HaPolicyInput');

export const CreateVmBody = z
  .strictObject({
    name: NAME,
    vcpus: z.number().int().min(1).max(256),
    memoryMiB: z
      .number()
      .int()
      .min(16)
      .max(16 * 1024 * 1024),
    disks: z.array(DiskInput).max(16).default([]),
    networks: z.array(NicInput).max(8).default([]),
    boot: BootInput,
    machine: z.enum(['q35', 'pc']).default('q35'),
    description: z.string().max(1024).optional(),
    tags: z
      .array(TAG)
      .max(32)
      .optional()
      .openapi({ description: 'Labels (lowercase) that group VMs: backup jobs select VMs by tag' }),
    start: z.boolean().default(false).openapi({ description: 'Start the VM once created' }),
    agent: z
      .boolean()
      .default(true)
      .openapi({ description: 'Give the VM the guest agent channel (virtio-serial)' }),
    placement: Placement.optional(),
    ha: HaPolicyInput.optional().openapi({ description: 'High availability (PUT /vms/{id}/ha changes it)' }),
    maxVcpus: z
      .number()
      .int()
      .min(1)
      .max(256)
      .optional()
      .openapi({ description: 'vCPUs can be hot-added up to this many while the VM runs (PATCH vcpus)' }),
    maxMemoryMiB: z
      .number()
      .int()
      .min(16)
      .max(16 * 1024 * 1024)
      .optional()
      .openapi({
        description:
          'Memory can be hot-added (DIMMs, 128 MiB steps) up to this many MiB while the VM runs (PATCH memoryMiB)',
      }),
    firmware: z.enum(['bios', 'uefi']).default('bios').openapi({
      description: 'bios (SeaBIOS) or uefi (OVMF, with a variable store of its own that outlives restarts)',
    }),
    secureBoot: z
      .boolean()
      .default(false)
      .openapi({ description: 'UEFI Secure Boot with Microsoft keys enrolled (needs uefi and q35)' }),
    tpm: z
      .boolean()
      .default(false)
      .openapi({ description: 'A TPM 2.0 (swtpm, CRB) whose state the host keeps' }),
    cpu: CpuInput.optional(),
    video: VideoSchema.default('std'),
    tablet: z
      .boolean()
      .default(true)
      .openapi({ description: 'A USB tablet: the console pointer follows the mouse exactly' }),
    onBoot: OnBootInput.optional().openapi({
      description: 'Start it again when its host comes back from a restart or a planned shutdown (if it ran)',
    }),
    cloudInit: CloudInitInput.optional().openapi({
      description: 'cloud-init NoCloud seed (a CD-ROM labelled cidata), made anew at every start',
    }),
    bootOrder: z
      .array(
        z
          .string()
          .regex(
            /^(disk\d+|net\d+|cd[01])$/,
            'a device id: disk0, net0, cd0 (boot CD-ROM), cd1 (media drive)',
          ),
      )
      .max(24)
      .optional()
      .openapi({
        description: 'Devices the firmware tries, in order (PXE for a NIC); default: boot decides',
      }),
    media: z
      .strictObject({ image: z.string().min(1).optional() })
      .optional()
      .openapi({
        description:
          'A removable CD-ROM drive beside the boot one, empty or with an ISO image (VirtIO drivers, installers); change it with POST /vms/{id}/media',
      }),
  })
  .openapi('CreateVm');

export type CreateVmInput = z.infer<typeof CreateVmBody>;

/** PATCH /vms/{id}: what changes; hardware of a running VM waits for its next cold start. */
export const EditVmBody = z
  .strictObject({
    name: NAME.optional(),
    description: z.string().max(1024).optional(),
    tags: z
      .array(TAG)
      .max(32)
      .optional()
      .openapi({ description: "Replaces the VM's tags ([] removes them)" }),
    vcpus: z.number().int().min(1).max(256).optional(),
    memoryMiB: z
      .number()
      .int()
      .min(16)
      .max(16 * 1024 * 1024)
      .optional(),
    machine: z.enum(['q35', 'pc']).optional(),
    maxVcpus: z.number().int().min(1).max(256).optional(),
    maxMemoryMiB: z
      .number()
      .int()
      .min(16)
      .max(16 * 1024 * 1024)
      .optional(),
    boot: BootInput.optional(),
    bootOrder: z
      .array(z.string().regex(/^(disk\d+|net\d+|cd[01])$/, 'a device id: disk0, net0, cd0, cd1'))
      .max(24)
      .nullable()
      .optional()
      .openapi({ description: 'Devices the firmware tries, in order; null: boot decides' }),
    firmware: z.enum(['bios', 'uefi']).optional(),
    secureBoot: z.boolean().optional(),
    tpm: z.boolean().optional(),
    cpu: CpuInput.optional().openapi({ description: 'Replaces the CPU settings as a whole' }),
    video: VideoSchema.optional(),
    tablet: z.boolean().optional(),
    onBoot: OnBootInput.optional(),
    cloudInit: CloudInitInput.nullable().optional().openapi({
      description: 'Replaces the cloud-init settings (null removes them); seen by the guest at its next boot',
    }),
  })
  .openapi('EditVm');

export type EditVmInput = z.infer<typeof EditVmBody>;

export const HaPolicySchema = z
  .object({
    enabled: z.boolean().openapi({ description: 'Restart the VM on another host when its host fails' }),
    priority: z.enum(['high', 'medium', 'low']).openapi({
      description: 'Restart class: each class runs (or 30 s pass) before the next starts',
    }),
    restartOrder: z
      .number()
      .int()
      .min(0)
      .max(1000)
      .openapi({ description: 'Within a priority, lower first' }),
    isolationResponse: z.enum(['poweroff', 'shutdown', 'leave']).openapi({
      description:
        'What a host that lost the cluster does with the VM before the others restart it: poweroff (kill QEMU, the default), shutdown (ask the guest; its disk writes are fenced meanwhile), leave (storage fencing alone)',
    }),
    monitoring: z.boolean().optional().openapi({
      description:
        'VM monitoring: reset the guest when its agent, having answered, stays silent with no disk I/O for the monitoring timeout (at most 3 resets an hour)',
    }),
  })
  .openapi('HaPolicy');

export const VmState = z.enum([
  'pending',
  'stopped',
  'starting',
  'running',
  'stopping',
  'paused',
  'error',
  'unknown',
]);

export const SnapshotSchema = z
  .object({
    name: z.string(),
    description: z.string().optional(),
    createdAt: z.string(),
    vmState: z.enum(['running', 'paused', 'stopped']),
    quiesced: z.boolean().optional().openapi({ description: 'File systems were frozen by the guest agent' }),
  })
  .openapi('Snapshot');

export const VmSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    state: VmState,
    reason: z.string().optional().openapi({
      description: 'Why the VM is in error, pending (no host fits) or unknown (host unreachable)',
    }),
    warning: z.string().optional().openapi({
      description: 'Something of the running VM is broken that needs an admin (its TPM emulator died)',
    }),
    powerState: z.enum(['running', 'stopped', 'paused']).openapi({ description: 'The desired power state' }),
    node: z.string().openapi({ description: "The VM's host; empty while pending" }),
    placement: Placement.optional(),
    vcpus: z.number(),
    memoryMiB: z.number(),
    machine: z.string(),
    description: z.string().optional(),
    tags: z.array(z.string()).optional(),
    disks: z.array(
      z.object({
        id: z.string(),
        pool: z.string(),
        volume: z.string(),
        sizeBytes: z.number(),
        image: z.string().optional(),
        cloneOf: z
          .object({ vm: z.string(), disk: z.string() })
          .optional()
          .openapi({ description: 'A linked clone of this template disk' }),
        bus: DiskBusSchema.optional(),
        slot: z.string().optional().openapi({ description: 'The hot-plug slot it went into' }),
        cache: DiskCacheSchema.optional(),
        aio: DiskAioSchema.optional(),
        limits: z
          .object({
            iops: z.number().optional(),
            iopsRead: z.number().optional(),
            iopsWrite: z.number().optional(),
            bps: z.number().optional(),
            bpsRead: z.number().optional(),
            bpsWrite: z.number().optional(),
          })
          .optional()
          .openapi({ description: 'Per-second I/O limits' }),
      }),
    ),
    hotplugSlots: z.number().optional().openapi({ description: 'Empty PCIe root ports for hot-plug (q35)' }),
    maxVcpus: z.number().optional().openapi({ description: 'vCPUs can be hot-added up to this many' }),
    maxMemoryMiB: z
      .number()
      .optional()
      .openapi({ description: 'Memory can be hot-added up to this many MiB' }),
    media: z
      .object({ image: z.string().optional() })
      .optional()
      .openapi({ description: 'The media drive: the id of the ISO image in it, or empty' }),
    bootOrder: z.array(z.string()).optional(),
    hotplug: z
      .object({
        op: z.enum(['add', 'remove']),
        kind: z.enum(['disk', 'nic']),
        id: z.string(),
        at: z.string(),
      })
      .optional()
      .openapi({ description: 'A hot-plug under way' }),
    firmware: z.enum(['bios', 'uefi']),
    secureBoot: z.boolean(),
    efiVars: z
      .object({ pool: z.string(), volume: z.string() })
      .optional()
      .openapi({ description: 'UEFI: the volume holding the VM variable store' }),
    tpm: z.boolean(),
    cpu: z.object({
      model: z.string(),
      sockets: z.number(),
      cores: z.number(),
      threads: z.number(),
      flags: z.record(z.string(), z.boolean()).optional(),
    }),
    video: VideoSchema,
    tablet: z.boolean(),
    onBoot: z.object({ enabled: z.boolean(), order: z.number(), delaySec: z.number() }).optional(),
    cloudInit: z
      .object({
        hostname: z.string().optional(),
        sshKeys: z.array(z.string()).optional(),
        passwordSet: z.boolean(),
        userData: z
          .boolean()
          .openapi({ description: 'A user-data document was given (its text is not shown)' }),
        networkConfig: z.boolean(),
      })
      .optional(),
    pendingChanges: z.record(z.string(), z.unknown()).optional().openapi({
      description:
        'Hardware changes made while the VM ran, applied at its next cold start (a stop and a start; a guest reboot is not one)',
    }),
    template: z.boolean().optional().openapi({ description: 'A template: never powered on; clone it' }),
    ha: HaPolicySchema.optional(),
    epoch: z.number().optional().openapi({
      description: 'Ownership epoch (an etcd revision) handed to its host with every start',
    }),
    migration: z
      .object({
        taskId: z.string(),
        source: z.string(),
        target: z.string(),
        localDisks: z.array(z.string()),
        startedAt: z.string(),
      })
      .optional()
      .openapi({ description: 'A live migration under way (POST /vms/{id}/migrate); actions wait for it' }),
    networks: z.array(
      z.object({
        id: z.string(),
        network: z.string(),
        mac: z.string(),
        model: NicModelSchema.optional(),
        slot: z.string().optional(),
        linkDown: z.boolean().optional().openapi({ description: 'The cable is pulled' }),
      }),
    ),
    boot: z.record(z.string(), z.unknown()),
    pid: z.number().optional(),
    agent: z.object({
      enabled: z.boolean(),
      status: z.enum(['connected', 'absent', 'disabled']),
      version: z.string().optional(),
      flavour: z.enum(['neuroflow', 'qemu-ga']).optional(),
    }),
    startedAt: z.string().optional(),
    snapshots: z.array(SnapshotSchema),
    createdAt: z.string(),
    updatedAt: z.string(),
  })
  .openapi('Vm');

export const ErrorSchema = z
  .object({ error: z.object({ code: z.string(), message: z.string(), details: z.unknown().optional() }) })
  .openapi('Error');

export const IdParam = z.object({
  id: z
    .string()
    .min(1)
    .openapi({ param: { name: 'id', in: 'path' }, description: 'id or name' }),
});

export const StopQuery = z.strictObject({
  force: z.enum(['true', 'false']).optional(),
  timeoutSec: z.coerce.number().int().min(0).max(3600).optional(),
});

export const ForceQuery = z.strictObject({ force: z.enum(['true', 'false']).optional() });

export const CreateSnapshotBody = z
  .strictObject({ name: SNAPSHOT_NAME, description: z.string().max(1024).optional() })
  .openapi('CreateSnapshot');

export const SnapshotParams = z.object({
  id: z
    .string()
    .min(1)
    .openapi({ param: { name: 'id', in: 'path' } }),
  snap: z
    .string()
    .min(1)
    .openapi({ param: { name: 'snap', in: 'path' } }),
});

export const ImageSchema = z
  .object({
    id: z.string(),
    name: z.string(),
    kind: z.enum(['iso', 'disk']),
    format: z.enum(['iso', 'qcow2', 'raw']),
    pool: z.string(),
    sizeBytes: z.number(),
    virtualSizeBytes: z.number(),
    sha256: z.string(),
    createdAt: z.string(),
    source: z.string().optional(),
    node: z
      .string()
      .optional()
      .openapi({ description: 'The host whose pool holds it (not for a shared pool)' }),
    shared: z.boolean().optional().openapi({
      description: 'In a shared pool: every host clones VM disks from it; it pins no VM to a host',
    }),
  })
  .openapi('Image');

export const CopyImageBody = z
  .strictObject({
    pool: z.string().min(1).openapi({ description: 'A shared pool (type rbd)', example: 'ceph' }),
    name: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,62}$/)
      .optional()
      .openapi({ description: 'The new image (default: NAME-POOL)' }),
  })
  .openapi('CopyImage');

export const ImportImageBody = z
  .strictObject({
    name: NAME,
    path: ABS_PATH.openapi({ description: 'A file on the host to copy into the pool' }),
    pool: NAME.optional(),
    sha256: z
      .string()
      .regex(/^[0-9a-f]{64}$/)
      .optional()
      .openapi({ description: 'Expected checksum; the import fails if it differs' }),
  })
  .openapi('ImportImage');

export const UploadImageQuery = z.strictObject({
  name: NAME,
  pool: NAME.optional(),
  sha256: z
    .string()
    .regex(/^[0-9a-f]{64}$/)
    .optional(),
});

export const NodeSchema = z
  .object({
    name: z.string(),
    state: z.enum(['ready', 'not-ready', 'maintenance']),
    role: z.enum(['controller', 'worker']),
    leader: z.boolean().openapi({ description: 'This host leads the controllers (scheduler, reconciler)' }),
    lastHeartbeat: z.string().nullable(),
    connected: z.boolean().openapi({
      description: "This controller's gRPC connection to the host is up (always true for itself)",
    }),
    addresses: z.array(z.string()),
    joinedAt: z.string(),
    cpus: z.number(),
    cpuModel: z.string(),
    cpuLevels: z.array(z.string()).openapi({
      description: 'The portable CPU levels (x86-64-v2..v4) QEMU gives guests here under its accelerator',
    }),
    memoryTotalBytes: z.number(),
    memoryAvailableBytes: z.number().nullable(),
    accelerator: z.enum(['kvm', 'tcg']).nullable(),
    acceleratorReason: z.string().optional(),
    qemuVersion: z.string().optional(),
    kernel: z.string().optional(),
    uptimeSec: z.number().optional(),
    loadAvg: z.array(z.number()).optional(),
    watchdog: z.object({ device: z.string(), armed: z.boolean() }).optional().openapi({
      description:
        'The watchdog device serve feeds (serve --watchdog), armed while an HA VM whose isolation response powers it off or shuts it down runs here: a hung serve then resets the host. Absent: none given, or the host is not connected',
    }),
    vms: z.object({ total: z.number(), running: z.number() }),
    allocation: z
      .object({ vms: z.number(), poweredOn: z.number(), vcpus: z.number(), memoryBytes: z.number() })
      .openapi({
        description:
          'VMs placed on the host (vms), and the count, vCPUs and memory of those powered on: a stopped VM holds no CPU or memory',
      }),
    allocatedMemoryMiB: z.number(),
    pools: z.array(
      z.object({ name: z.string(), type: z.string(), totalBytes: z.number(), freeBytes: z.number() }),
    ),
    etcd: z
      .object({ memberId: z.string(), learner: z.boolean(), peerUrl: z.string(), clientUrl: z.string() })
      .optional(),
    evacuationTask: z
      .string()
      .optional()
      .openapi({ description: 'In the answer to entering maintenance: the task that empties the host' }),
  })
  .openapi('Node');

export const NodePatch = z
  .strictObject({ maintenance: z.boolean().openapi({ description: 'No new VMs are placed on it' }) })
  .openapi('NodePatch');

export const JoinTokenSchema = z
  .object({
    id: z.string(),
    token: z
      .string()
      .optional()
      .openapi({ description: 'Only in the answer to create: paste it on the new host' }),
    expiresAt: z.string(),
    createdAt: z.string(),
    createdBy: z.string(),
    description: z.string().optional(),
    role: z.enum(['controller', 'worker']).openapi({ description: 'What the joining host becomes' }),
    status: z.enum(['valid', 'used', 'expired']),
    usedAt: z.string().optional(),
    usedBy: z.string().optional(),
  })
  .openapi('JoinToken');

export const CreateJoinToken = z
  .strictObject({
    ttlSec: z.number().int().min(60).max(604800).default(3600),
    description: z.string().max(256).optional(),
    role: z.enum(['controller', 'worker']).default('worker').openapi({
      description:
        'What the joining host becomes: a controller (etcd member, API, receives the CA key; at most three) or a worker (runs VMs)',
    }),
  })
  .openapi('CreateJoinToken');

export const JoinRequestSchema = z
  .strictObject({
    tokenId: z.string().max(64),
    secret: z.string().max(128),
    name: z.string().max(253),
    address: z.string().max(64),
    csr: z.string().max(16384),
    apiPort: z.number().int(),
    grpcPort: z.number().int(),
    etcdClientPort: z.number().int(),
    etcdPeerPort: z.number().int(),
  })
  .openapi('JoinRequest');

export const PolicySchema = z
  .object({
    strategy: z
      .enum(['spread', 'pack'])
      .openapi({ description: 'spread: least loaded host; pack: fullest host' }),
    memoryOvercommit: z.number().min(1).max(4).openapi({ description: '1 = no memory overcommit' }),
    vcpuOvercommit: z
      .number()
      .min(0.1)
      .max(1000)
      .openapi({ description: 'vCPUs allowed per host CPU (4 by default)' }),
    defaultCpuModel: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'auto, host, x86-64-v2..v4 or a QEMU model name')
      .openapi({
        description:
          'The CPU model of new VMs that name none: auto (the host CPU while every host has the same, else the highest x86-64 level every host runs), host, x86-64-v2..v4 or a QEMU model',
      }),
  })
  .openapi('PlacementPolicy');

export const ClusterPatch = z
  .strictObject({ policy: PolicySchema.partial().strict() })
  .openapi('ClusterPatch');

export const ClusterSchema = z
  .object({
    name: z.string(),
    policy: PolicySchema,
    mode: z.enum(['single-host', 'cluster']),
    leader: z.string().nullable(),
    caFingerprint: z.string().nullable(),
    cpu: z
      .object({ defaultModel: z.string(), model: z.string(), why: z.string() })
      .openapi({ description: 'The CPU model new VMs get when they name none, and why' }),
    etcdMembers: z.array(
      z.object({ id: z.string(), name: z.string(), learner: z.boolean(), peerUrls: z.array(z.string()) }),
    ),
  })
  .openapi('Cluster');

export const TaskSchema = z
  .object({
    id: z.string(),
    type: z.string(),
    target: z.string(),
    user: z.string(),
    status: z.enum(['running', 'ok', 'error']),
    progress: z.number(),
    error: z.object({ code: z.string(), message: z.string() }).optional(),
    startedAt: z.string(),
    updatedAt: z.string().optional(),
    endedAt: z.string().optional(),
    runner: z.string().optional().openapi({
      description:
        'The daemon running it (host/process); a task its daemon left running is ended when the host starts again',
    }),
    cancellable: z.boolean().optional().openapi({ description: 'POST /tasks/{id}/cancel stops it' }),
    cancelRequested: z.boolean().optional(),
    details: z.record(z.string(), z.unknown()).optional().openapi({
      description:
        'What it does now; a migration: source, target, why, phase (preparing, disks, memory, switching, cleanup), ram {transferredBytes, remainingBytes, totalBytes, dirtyRateBytesPerSec, iteration, expectedDowntimeMs, mbps}, disks {doneBytes, totalBytes}',
    }),
    result: z.record(z.string(), z.unknown()).optional().openapi({
      description:
        'What it measured; a migration: target, downtimeMs (QEMU), totalMs, setupMs, transferredBytes',
    }),
  })
  .openapi('Task');

export const MigrateBody = z
  .strictObject({
    node: z
      .string()
      .min(1)
      .max(63)
      .optional()
      .openapi({ description: 'Target host; without it the scheduler picks' }),
    maxBandwidthMiBps: z.number().int().min(1).max(100_000).optional(),
    policy: z
      .strictObject({
        downtimeLimitMs: z
          .number()
          .int()
          .min(1)
          .max(10_000)
          .optional()
          .openapi({ description: 'Default 50' }),
        autoConvergeAfter: z
          .number()
          .int()
          .min(1)
          .max(100)
          .optional()
          .openapi({ description: 'Iterations before the guest is throttled more readily (default 5)' }),
        postcopy: z.boolean().optional().openapi({ description: 'Allow post-copy (default false)' }),
        timeLimitSec: z.number().int().min(10).max(86_400).optional().openapi({ description: 'Default 600' }),
      })
      .optional(),
  })
  .openapi('Migrate');

export const ExecBody = z
  .strictObject({
    command: z
      .array(z.string().min(1))
      .min(1)
      .max(256)
      .openapi({ description: 'argv: the program (a path or a name the guest finds) and its arguments' }),
    input: z
      .string()
      .max(16 * 1024 * 1024)
      .optional()
      .openapi({ description: 'Text for its standard input' }),
    inputBase64: z
      .string()
      .max(24 * 1024 * 1024)
      .optional()
      .openapi({ description: 'Binary standard input, base64' }),
    env: z
      .array(z.string().regex(/^[^=]+=/, 'NAME=value'))
      .max(256)
      .optional(),
    timeoutSec: z
      .number()
      .int()
      .min(1)
      .max(3600)
      .optional()
      .openapi({ description: 'Give up waiting after this long (default 60)' }),
    binary: z
      .boolean()
      .optional()
      .openapi({ description: 'Return stdoutBase64/stderrBase64 instead of text' }),
  })
  .refine((b) => !(b.input !== undefined && b.inputBase64 !== undefined), {
    message: 'give input or inputBase64, not both',
  })
  .openapi('GuestExec');

export const ExecResultSchema = z
  .object({
    exitCode: z.number().nullable(),
    signal: z.number().optional(),
    stdout: z.string().optional(),
    stderr: z.string().optional(),
    stdoutBase64: z.string().optional(),
    stderrBase64: z.string().optional(),
    truncated: z.boolean(),
  })
  .openapi('GuestExecResult');

export const PasswordBody = z
  .strictObject({
    username: z.string().regex(/^[a-z_][a-z0-9_.-]{0,31}\$?$/i, 'a user name of the guest'),
    password: z.string().min(1).max(4096),
    crypted: z.boolean().default(false).openapi({ description: 'password is already a crypt(3) hash' }),
  })
  .openapi('GuestPassword');

export const MetricsQuery = z.strictObject({
  range: z
    .enum(['1h', '24h'])
    .default('1h')
    .openapi({ description: '1h: a point per sample (10 s); 24h: 5-minute averages' }),
});

export const MetricsSchema = z
  .object({
    range: z.enum(['1h', '24h']),
    intervalSec: z.number(),
    points: z.array(z.record(z.string(), z.number().nullable())),
  })
  .openapi('Metrics');

const PoolName = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, '1-32 lower-case letters, digits or -, starting with a letter')
  .openapi({ example: 'ceph' });

export const PoolSchema = z
  .object({
    name: z.string(),
    type: z
      .string()
      .openapi({ description: '`dir` (each host its own, thin qcow2 files) or `rbd` (Ceph, shared)' }),
    capabilities: z.object({
      shared: z.boolean(),
      thin: z.boolean(),
      snapshots: z.boolean(),
      linkedClones: z.boolean(),
      liveResize: z.boolean(),
    }),
    totalBytes: z.number(),
    freeBytes: z.number(),
    hosts: z
      .array(z.object({ name: z.string(), totalBytes: z.number(), freeBytes: z.number() }))
      .openapi({ description: 'Hosts that reach the pool, with the figures each reported' }),
    rbd: z
      .object({ pool: z.string(), monitors: z.array(z.string()), user: z.string() })
      .optional()
      .openapi({ description: 'The Ceph pool and how hosts reach it (the key is never shown)' }),
    description: z.string().optional(),
    createdAt: z.string().optional(),
    vms: z.number().openapi({ description: 'VMs with a disk in the pool' }),
  })
  .openapi('Pool');

export const CreatePoolBody = z
  .strictObject({
    name: PoolName,
    type: z.literal('rbd'),
    pool: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,99}$/)
      .openapi({ description: 'The Ceph pool (it must exist, with the rbd application)', example: 'rbd' }),
    monitors: z
      .array(z.string().min(1).max(200))
      .min(1)
      .max(16)
      .openapi({ example: ['10.0.0.1', '10.0.0.2:6789', '[v2:10.0.0.3:3300,v1:10.0.0.3:6789]'] }),
    user: z
      .string()
      .regex(/^[a-zA-Z0-9][a-zA-Z0-9._-]{0,63}$/)
      .openapi({ description: 'cephx user without "client."', example: 'neuroflow' }),
    key: z
      .string()
      .min(1)
      .max(200)
      .openapi({ description: 'Its cephx key (`ceph auth get-key client.USER`); stored, never shown again' }),
    description: z.string().max(500).optional(),
  })
  .openapi('CreatePool');

export const VolumeSchema = z
  .object({
    name: z.string(),
    virtualBytes: z.number(),
    allocatedBytes: z.number(),
    parent: z.string().optional(),
    snapshots: z.array(z.string()),
  })
  .openapi('Volume');
