#!/usr/bin/env bun
// First of all: @peculiar/x509 (cluster PKI) needs the Reflect polyfill loaded before it, whichever
// module the bundler initialises first.
import './cluster/reflect';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { DEFAULT_DATA_DIR } from './cli/client';
import {
  clusterCommand,
  drsCommand,
  imageCommand,
  nodeCommand,
  taskCommand,
  vmCommand,
} from './cli/commands';
import { NfError, toNfError } from './errors';
import { parseProviders } from './network/ovn/host';
import { serve } from './serve';
import { parseHostPort } from './util/net';
import { VERSION } from './version';

const USAGE = `neuroflow ${VERSION}: virtual machines on QEMU, managed through one API

Usage:
  neuroflow serve [--dev] [--data-dir DIR] [--listen HOST:PORT] [--root-password PW] [--host-path DIR]...
                  [--demo-image NAME=PATH]... [--name HOST] [--advertise IP] [--join TOKEN] [--cluster-name N]
                  [--grpc-port 8007] [--etcd-client-port 2379] [--etcd-peer-port 2380]
                  [--migration-network CIDR] [--overlay-interface IFACE] [--provider-network NAME=IFACE]...
                  [--watchdog /dev/watchdog]
      --migration-network (or NEUROFLOW_MIGRATION_NETWORK): live migrations reach this host on its address
      in that network (TLS always); default: the management address.
      --overlay-interface (or NEUROFLOW_OVERLAY_INTERFACE): Geneve tunnels of overlay networks go out of
      this interface, from its first IPv4 address (on the userspace datapath it becomes a port of br-phy
      and its addresses move there); default: the management address.
      --provider-network (or NEUROFLOW_PROVIDER_NETWORKS=NAME=IFACE,...): a physical network of this host
      for provider networks (and routers' uplinks): IFACE becomes a port of the OVS bridge br-NAME (br-phy
      when it is the overlay interface too) and its addresses move there. Give the same NAMEs on every host.
      --watchdog (or NEUROFLOW_WATCHDOG): feed this watchdog device every second while the host runs an
      HA VM (isolation response poweroff or shutdown); a hung daemon then lets it reset the host (a hung
      host cannot keep VMs the cluster restarts elsewhere). Disarmed (magic close) when none runs.
      --dev: one host alone over plain HTTP (loopback). Without it, the first start makes a new cluster
      (CA, TLS etcd member, HTTPS API) unless --join TOKEN joins an existing one.
  neuroflow vm list|show|create|start|stop|reboot|reset|pause|resume|delete|console-log|snapshot ...
  neuroflow vm create NAME [--vcpus N] [--memory MIB] [--disk GIB|image:NAME[:GIB]]... [--network NET]...
                  [--kernel PATH [--initrd PATH] [--cmdline S] | --cdrom IMAGE | --boot-disk N] [--machine q35|pc]
                  [--max-vcpus N] [--max-memory MIB] [--firmware bios|uefi] [--secure-boot] [--tpm] [--cpu MODEL] [--sockets N] [--cores N]
                  [--threads N] [--cpu-flag +FLAG|-FLAG]... [--video std|virtio|qxl|cirrus|none] [--no-tablet]
                  [--disk-bus virtio-blk|virtio-scsi|sata|ide] [--disk-cache none|writeback|writethrough|directsync|unsafe]
                  [--disk-aio threads|native|io_uring] [--nic-model virtio|e1000e|rtl8139|vmxnet3]
                  [--on-boot [--on-boot-order N] [--on-boot-delay SEC]] [--boot-order DEV,DEV...] [--ci-hostname NAME] [--ssh-key KEY|--ssh-key-file F]...
                  [--ci-user-data FILE] [--start]   on boot: start it again when its host
                  comes back from a restart or a planned shutdown (lower order first, SEC before the next)
  neuroflow vm set NAME [--name NEW] [--description D] [--tag T... | --no-tags] [--vcpus N] [--memory MIB] [--kernel ...|--cdrom IMAGE|--boot-disk N]
                  [create's hardware, on-boot and cloud-init flags] [--no-tpm] [--tablet] [--no-on-boot] [--no-cloud-init]   change a VM (If-Match: a change made meanwhile is
                  refused); a running VM's hardware changes at its next stop and start (shown as Pending),
                  except vCPUs and memory (128 MiB steps) added up to --max-vcpus/--max-memory: at once
  neuroflow vm disk add NAME GIB [--pool P] [--disk-bus B] [--disk-cache M] [--disk-aio A] | vm disk remove NAME DISK [--delete-volume]
  neuroflow vm nic add NAME [--network N] [--nic-model M] | vm nic remove NAME NIC | vm nic link NAME NIC up|down
  neuroflow vm disk limit NAME DISK [--iops N] [--bps BYTES]   I/O limits (none given: no limits), live
  neuroflow vm disk io NAME DISK [--disk-cache MODE] [--disk-aio ENGINE]   cache mode and AIO (VM stopped)
  neuroflow vm media NAME ISO | vm media NAME --eject   the media drive (create with --media ISO, or --media ''
                  for an empty one): change its disc, live while the VM runs
                  add or remove devices: hot-plugged while the VM runs (virtio; the guest must let go on removal)
  neuroflow vm resize NAME DISK GIB         grow a disk (online while the VM runs)
  neuroflow vm move-disk NAME DISK POOL     move a disk to another pool (live while the VM runs)
  neuroflow vm migrate NAME [--node HOST] [--bandwidth MIBPS] [--downtime-ms N] [--postcopy] [--time-limit SEC]
                  [--no-wait]              live migration to another host (the scheduler picks without --node)
  neuroflow vm template NAME | vm clone TEMPLATE NEW [--node HOST] [--full]   templates, linked or full clones
  neuroflow vm clone VM NEW --snapshot S    a new VM from a snapshot of any VM (running or not): copies of its disks
  neuroflow vm guest NAME | vm exec NAME -- PROGRAM ARGS... | vm password NAME --user U < file | vm fsfreeze|fsthaw NAME
  neuroflow import ova|vmdk FILE [--name NAME] [--network-map SRC=DST]... [--pool P] [--devices auto|virtio|emulated]
                  [--vcpus N --memory MIB] [--start] [--dry-run]   import a VM exported from VMware: FILE is
                  uploaded (--host-path: a file on the API's host, also an OVF beside its disks), its hardware
                  mapped (shown), its disks converted into the pool; the task is followed to the new VM
  neuroflow backup repo list | repo add NAME PATH [--shared] [--encrypt] | repo rm NAME | repo verify|gc NAME
                  backup repositories (--shared: the same storage at the same path on every host)
  neuroflow backup create VM --repository R [--notes T]   back a VM up now (running: at one instant, file
                  systems frozen by the agent; incremental when R has an earlier backup of it); follows the task
  neuroflow backup list [--repository R] [--vm VM] | show ID | rm ID | verify ID | restore ID --name NEW [--pool P]
                  [--start] | restore ID --in-place (over its stopped VM) | boot-verify ID [--timeout SEC]
                  (boot-verify: restored into an isolated VM,
                  started, passed when its guest agent answers; the VM is deleted afterwards)
  neuroflow backup files ID [FS [PATH]] | download ID FS PATH [--output FILE|-]   file restore: a backup's
                  file systems (ext2/3/4 browsed), a directory, one file
  neuroflow backup job list | job add NAME --schedule CRON --repository R (--all | --vm VM... | --tag T...)
                  [--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] ... | job run|enable|disable|rm NAME
  neuroflow network list | show NAME | create NAME --subnet CIDR [--gateway IP] [--dns IP]... [--mtu N]
                  [--provider [--physical-network P] [--vlan N] [--dhcp]] | rm NAME
                  networks: the built-in nat "default", OVN overlay networks (OVN DHCP; show lists NIC addresses),
                  provider networks (a physical network of the hosts, VLAN tagged or not)
  neuroflow router list | show NAME | create NAME [--network N]... [--uplink NET[:IP]] [--no-snat]
                  [--route DEST=NEXTHOP]... | set NAME [--network N]... [--uplink NET[:IP]|--no-uplink] [--route ...]
                  | rm NAME | fip add ROUTER VM [--nic NIC] [--ip IP] | fip rm ROUTER IP
  neuroflow sg list | show NAME | create NAME [--tag T]... [--rule RULE]... [--admin] [--description D]
                  | set NAME [--tag T]... [--rule RULE]... | rm NAME      security groups (stateful, by VM tag);
                  RULE: in|out:any|tcp|udp|icmp[:PORTS][:CIDR|@GROUP][:deny][:log], e.g. in:tcp:22:10.0.0.0/8
  neuroflow node list | node remove NAME [--force]
  neuroflow node maintenance NAME on|off [--no-wait]   on: live-migrates the host's VMs away (follows the
                  task; exits non-zero listing what stayed); off: moves nothing back
  neuroflow drs | drs set [--mode off|manual|automatic] [--threshold 1-5] | drs run | drs apply REC_ID [--no-wait]
                  load balancing: hosts' loads, recommendations, history; settings; a pass now; apply a move
  neuroflow ha | ha set [--detection SEC] [--tolerate N] [--monitoring-timeout SEC]   high availability: host states, admission control,
                  recovery timelines (detected, fenced, restarted); detection time, host failures to tolerate
  neuroflow vm ha NAME [--enable|--disable] [--priority high|medium|low] [--order N] [--isolation poweroff|shutdown|leave]
                  [--monitor|--no-monitor]   VM monitoring: reset a guest whose agent and disks went silent
  neuroflow cluster set [--strategy spread|pack] [--memory-overcommit X] [--vcpu-overcommit X] [--default-cpu-model auto|host|x86-64-v2|...]
                  placement policy, and the CPU model new VMs get when they name none (auto: the host CPU
                  while every host has the same, else the highest x86-64 level every host runs)
  neuroflow cluster show | cluster token create [--ttl 1h] [--role worker|controller] | cluster token list|show|revoke ID
  neuroflow image list|import|upload|delete ...
  neuroflow pool list|show|volumes|create|delete ...
  neuroflow ceph status|bootstrap|osd add HOST DEVICE|mon add HOST   integrated Ceph
  neuroflow task list | task cancel ID
  neuroflow console                       the appliance's console (TUI, TERM=linux)
  neuroflow install --disk /dev/X [--answer FILE]   install the appliance to a disk
  neuroflow appliance boot|serve|stop-vms appliance init and shutdown steps (run by the image's init)
  neuroflow version

Client commands find the API through --url/--token, NEUROFLOW_URL/NEUROFLOW_TOKEN, or --data-dir
(default ${DEFAULT_DATA_DIR}); add --json for machine-readable output.
Example:
  neuroflow vm create web1 --vcpus 1 --memory 256 --cdrom demo --disk 1 --start
`;

async function serveCommand(argv: string[]): Promise<void> {
  const { values } = parseArgs({
    args: argv,
    options: {
      dev: { type: 'boolean', default: false },
      'data-dir': { type: 'string', default: DEFAULT_DATA_DIR },
      listen: { type: 'string', default: '127.0.0.1:8006' },
      'demo-image': { type: 'string', multiple: true },
      'root-password': { type: 'string' },
      'host-path': { type: 'string', multiple: true },
      join: { type: 'string' },
      name: { type: 'string' },
      advertise: { type: 'string' },
      'cluster-name': { type: 'string' },
      'grpc-port': { type: 'string' },
      'etcd-client-port': { type: 'string' },
      'etcd-peer-port': { type: 'string' },
      'migration-network': { type: 'string' },
      'overlay-interface': { type: 'string' },
      'provider-network': { type: 'string', multiple: true },
      watchdog: { type: 'string' },
    },
  });
  const portFlag = (flag: 'grpc-port' | 'etcd-client-port' | 'etcd-peer-port') => {
    const v = values[flag];
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1 || n > 65535)
      throw new NfError('validation_failed', `--${flag} ${v}: not a port`);
    return n;
  };
  // NEUROFLOW_JOIN_TOKEN keeps the token out of `ps`.
  const joinToken = values.join ?? process.env.NEUROFLOW_JOIN_TOKEN;
  const { host, port } = parseHostPort(values.listen, 8006);
  const demoImages = (values['demo-image'] ?? []).map((s) => {
    const i = s.indexOf('=');
    if (i <= 0) throw new NfError('validation_failed', `--demo-image ${s}: use NAME=PATH`);
    return { name: s.slice(0, i), path: s.slice(i + 1) };
  });
  // NEUROFLOW_ROOT_PASSWORD keeps the password out of `ps`; --root-password is for labs. The appliance
  // passes only the scrypt hash it keeps: NEUROFLOW_ROOT_PASSWORD_SCRYPT='{"salt":"...","hash":"..."}'.
  const rootPassword = values['root-password'] ?? process.env.NEUROFLOW_ROOT_PASSWORD;
  const rootPasswordHash = parseScrypt(process.env.NEUROFLOW_ROOT_PASSWORD_SCRYPT);
  const hostPaths = [
    ...(values['host-path'] ?? []),
    ...(process.env.NEUROFLOW_HOST_PATHS ?? '').split(':').filter(Boolean),
  ];
  const migrationNetwork = values['migration-network'] ?? process.env.NEUROFLOW_MIGRATION_NETWORK;
  const watchdog = values.watchdog ?? process.env.NEUROFLOW_WATCHDOG;
  const overlayInterface = values['overlay-interface'] ?? process.env.NEUROFLOW_OVERLAY_INTERFACE;
  const providerNetworks = parseProviders([
    ...(values['provider-network'] ?? []),
    ...(process.env.NEUROFLOW_PROVIDER_NETWORKS ?? '').split(','),
  ]);
  const daemon = await serve({
    hostPaths,
    ...(migrationNetwork ? { migrationNetwork } : {}),
    ...(watchdog ? { watchdog } : {}),
    ...(overlayInterface ? { overlayInterface } : {}),
    providerNetworks,
    dataDir: values['data-dir'],
    host,
    port,
    dev: values.dev,
    demoImages,
    ...(rootPassword ? { rootPassword } : {}),
    ...(rootPasswordHash ? { rootPasswordHash } : {}),
    ...(joinToken ? { join: joinToken } : {}),
    ...(values.name ? { name: values.name } : {}),
    ...(values.advertise ? { advertise: values.advertise } : {}),
    ...(values['cluster-name'] ? { clusterName: values['cluster-name'] } : {}),
    ...(portFlag('grpc-port') ? { grpcPort: portFlag('grpc-port')! } : {}),
    ...(portFlag('etcd-client-port') ? { etcdClientPort: portFlag('etcd-client-port')! } : {}),
    ...(portFlag('etcd-peer-port') ? { etcdPeerPort: portFlag('etcd-peer-port')! } : {}),
  });
  // The compiled binary knows its own path; from sources, show the command name.
  const self = basename(process.execPath) === 'neuroflow' ? process.execPath : 'neuroflow';
  const dd = `--data-dir ${daemon.dataDir}`;
  const lines = [
    `NeuroFlow ${VERSION} is running.`,
    `  API:   ${daemon.url}/api/v1  (OpenAPI: ${daemon.url}/api/v1/openapi.json)`,
    `  Token: ${daemon.tokenPath || "the cluster's admin token (in DATA_DIR/admin.token of the first host)"}`,
    `  Try:   ${self} vm list ${dd}`,
  ];
  if (demoImages.length > 0) {
    lines.push(
      `         ${self} vm create demo1 --memory 256 --cdrom ${demoImages[0]!.name} --disk 1 --start ${dd}`,
    );
    lines.push(`         ${self} vm console-log demo1 ${dd}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  let stopping = false;
  const shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${signal}: stopping NeuroFlow (VMs keep running)\n`);
    await daemon.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

function parseScrypt(text: string | undefined): { salt: string; hash: string } | undefined {
  if (!text) return undefined;
  try {
    const v = JSON.parse(text) as { salt?: unknown; hash?: unknown };
    if (typeof v.salt === 'string' && typeof v.hash === 'string') return { salt: v.salt, hash: v.hash };
  } catch {}
  throw new NfError(
    'validation_failed',
    'NEUROFLOW_ROOT_PASSWORD_SCRYPT must be JSON {"salt": "...", "hash": "..."}',
  );
}

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  const out = (s: string) => process.stdout.write(`${s}\n`);
  try {
    switch (cmd) {
      case 'serve':
        await serveCommand(rest);
        return -1; // keeps running
      case 'vm':
        return (await vmCommand(rest, out)) ?? 0;
      case 'node':
        await nodeCommand(rest, out);
        return 0;
      case 'cluster':
        await clusterCommand(rest, out);
        return 0;
      case 'drs':
        await drsCommand(rest, out);
        return 0;
      case 'ha':
        await (await import('./cli/ha')).haCommand(rest, out);
        return 0;
      case 'console':
        return await (await import('../tui/main')).consoleCommand(rest);
      case 'appliance':
        return await (await import('./appliance/commands')).applianceCommand(rest);
      case 'install':
        return await (await import('./appliance/commands')).installCommand(rest);
      case 'image':
        await imageCommand(rest, out);
        return 0;
      case 'task':
        await taskCommand(rest, out);
        return 0;
      case 'pool':
        await (await import('./cli/pools')).poolCommand(rest, out);
        return 0;
      case 'import':
        return await (await import('./cli/imports')).importCommand(rest, out);
      case 'backup':
        return await (await import('./cli/backups')).backupCommand(rest, out);
      case 'network':
        return await (await import('./cli/networks')).networkCommand(rest, out);
      case 'router':
        return await (await import('./cli/networks')).routerCommand(rest, out);
      case 'sg':
      case 'security-group':
        return await (await import('./cli/networks')).securityGroupCommand(rest, out);
      case 'ceph':
        await (await import('./cli/ceph')).cephCommand(rest, out);
        return 0;
      case 'version':
      case '--version':
        out(VERSION);
        return 0;
      case undefined:
      case 'help':
      case '--help':
      case '-h':
        out(USAGE);
        return cmd === undefined ? 2 : 0;
      default:
        process.stderr.write(`unknown command "${cmd}"\n\n${USAGE}`);
        return 2;
    }
  } catch (err) {
    const e = toNfError(err);
    process.stderr.write(`error (${e.code}): ${e.message}\n`);
    return e.code === 'validation_failed' ? 2 : 1;
  }
}

// A stray rejection must not take the daemon (and the management of every VM) down with it.
process.on('unhandledRejection', (reason) => {
  process.stderr.write(
    `${JSON.stringify({ time: new Date().toISOString(), level: 'error', msg: 'unhandled rejection', reason: String(reason) })}\n`,
  );
});

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  if (code >= 0) process.exit(code);
}
