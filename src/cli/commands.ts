import { readFileSync, statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import type { DrsStatus } from '../controller/drs';
import { TOLERANCE } from '../controller/drs-policy';
import type { TaskRecord } from '../controller/records';
import { type ErrorCode, isErrorCode, NfError } from '../errors';
import { ApiClient, resolveEndpoint } from './client';
import { bytes, table } from './table';

export type Out = (s: string) => void;

/** A task as the API answers it, with its type's details and result. */
export type Task<Details = Record<string, unknown>, Result = Record<string, unknown>> = Omit<
  TaskRecord,
  'details' | 'result'
> & { details?: Details; result?: Result };

/** A vm.migrate task: QEMU's figures while it runs, the downtime and duration once it is done. */
type MigrateTask = Task<
  {
    source: string;
    target: string;
    why?: string;
    phase: 'preparing' | 'disks' | 'memory' | 'switching' | 'cleanup';
    ram?: {
      transferredBytes: number;
      remainingBytes: number;
      totalBytes: number;
      dirtyRateBytesPerSec: number;
      iteration: number;
      expectedDowntimeMs: number;
      mbps: number;
    };
    disks?: { doneBytes: number; totalBytes: number };
  },
  { target: string; downtimeMs: number; totalMs: number; setupMs?: number; transferredBytes?: number }
>;

/** A failed task as the error the CLI exits with; a code outside our table stays in the message. */
function taskError(task: Task<unknown, unknown>, fallback: string): NfError {
  const code = task.error?.code ?? '';
  if (isErrorCode(code)) return new NfError(code as ErrorCode, task.error?.message ?? fallback);
  return new NfError('internal', `${code ? `${code}: ` : ''}${task.error?.message ?? fallback}`);
}

export const GLOBAL = {
  url: { type: 'string' },
  token: { type: 'string' },
  'data-dir': { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;

interface Vm {
  id: string;
  name: string;
  state: string;
  node: string;
  vcpus: number;
  memoryMiB: number;
  maxMemoryMiB?: number;
  tags?: string[];
  reason?: string;
  disks: { id: string; sizeBytes: number; volume: string; bus?: string }[];
  networks?: { id: string; network: string; mac: string; model?: string }[];
  snapshots: { name: string; createdAt: string; vmState: string }[];
  agent: { status: string; version?: string };
  firmware?: string;
  secureBoot?: boolean;
  tpm?: boolean;
  cpu?: { model: string; sockets: number; cores: number; threads: number };
  pendingChanges?: Record<string, unknown>;
  onBoot?: { enabled: boolean; order: number; delaySec: number };
  cloudInit?: { hostname?: string; sshKeys?: string[]; passwordSet: boolean; userData: boolean };
  [k: string]: unknown;
}

function cpuText(c: NonNullable<Vm['cpu']>): string {
  return `${c.model}, ${c.sockets} socket(s) × ${c.cores} core(s) × ${c.threads} thread(s)`;
}

export function client(values: { url?: string; token?: string; 'data-dir'?: string }): ApiClient {
  const flags: { url?: string; token?: string; dataDir?: string } = {};
  if (values.url) flags.url = values.url;
  if (values.token) flags.token = values.token;
  if (values['data-dir']) flags.dataDir = values['data-dir'];
  return new ApiClient(resolveEndpoint(flags));
}

export function need(positionals: string[], i: number, what: string): string {
  const v = positionals[i];
  if (!v) throw new NfError('validation_failed', `missing ${what}`);
  return v;
}

export const enc = encodeURIComponent;

export async function vmCommand(argv: string[], out: Out): Promise<number | undefined> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GLOBAL,
      vcpus: { type: 'string', default: '1' },
      memory: { type: 'string', default: '512' },
      disk: { type: 'string', multiple: true },
      network: { type: 'string', multiple: true },
      kernel: { type: 'string' },
      initrd: { type: 'string' },
      cmdline: { type: 'string' },
      cdrom: { type: 'string' },
      'boot-disk': { type: 'string' },
      machine: { type: 'string' },
      description: { type: 'string' },
      tag: { type: 'string', multiple: true },
      'no-tags': { type: 'boolean', default: false },
      start: { type: 'boolean', default: false },
      force: { type: 'boolean', default: false },
      timeout: { type: 'string' },
      'no-agent': { type: 'boolean', default: false },
      user: { type: 'string' },
      pool: { type: 'string' },
      node: { type: 'string' },
      full: { type: 'boolean', default: false },
      snapshot: { type: 'string' },
      bandwidth: { type: 'string' },
      'downtime-ms': { type: 'string' },
      postcopy: { type: 'boolean', default: false },
      'time-limit': { type: 'string' },
      'no-wait': { type: 'boolean', default: false },
      enable: { type: 'boolean' },
      disable: { type: 'boolean' },
      priority: { type: 'string' },
      order: { type: 'string' },
      isolation: { type: 'string' },
      monitor: { type: 'boolean' },
      'no-monitor': { type: 'boolean' },
      firmware: { type: 'string' },
      'secure-boot': { type: 'boolean', default: false },
      tpm: { type: 'boolean', default: false },
      cpu: { type: 'string' },
      sockets: { type: 'string' },
      cores: { type: 'string' },
      threads: { type: 'string' },
      'cpu-flag': { type: 'string', multiple: true },
      video: { type: 'string' },
      'no-tablet': { type: 'boolean', default: false },
      'disk-bus': { type: 'string' },
      'disk-cache': { type: 'string' },
      'disk-aio': { type: 'string' },
      'nic-model': { type: 'string' },
      name: { type: 'string' },
      'no-tpm': { type: 'boolean', default: false },
      'delete-volume': { type: 'boolean', default: false },
      'on-boot': { type: 'boolean' },
      'no-on-boot': { type: 'boolean', default: false },
      'on-boot-order': { type: 'string' },
      'boot-order': { type: 'string' },
      'on-boot-delay': { type: 'string' },
      'max-vcpus': { type: 'string' },
      'max-memory': { type: 'string' },
      eject: { type: 'boolean', default: false },
      iops: { type: 'string' },
      bps: { type: 'string' },
      media: { type: 'string' },
      'ci-hostname': { type: 'string' },
      'ssh-key': { type: 'string', multiple: true },
      'ssh-key-file': { type: 'string', multiple: true },
      'ci-user-data': { type: 'string' },
      'no-cloud-init': { type: 'boolean', default: false },
      tablet: { type: 'boolean', default: false },
    },
  });
  const api = client(values);
  const [sub, name] = positionals;
  const show = (vm: Vm): undefined => {
    out(values.json ? JSON.stringify(vm, null, 2) : describeVm(vm));
  };
  switch (sub) {
    case 'list': {
      const vms = await api.request<Vm[]>('GET', '/api/v1/vms');
      out(
        values.json
          ? JSON.stringify(vms, null, 2)
          : table(
              vms.map((v) => ({ ...v, memory: `${v.memoryMiB} MiB` })),
              [
                { key: 'name', title: 'Name' },
                { key: 'state', title: 'State' },
                { key: 'node', title: 'Node' },
                { key: 'vcpus', title: 'vCPU' },
                { key: 'memory', title: 'Memory' },
                { key: 'id', title: 'Id' },
              ],
            ),
      );
      return;
    }
    case 'show':
      return show(await api.request<Vm>('GET', `/api/v1/vms/${enc(need(positionals, 1, 'VM name'))}`));
    case 'create': {
      const body: Record<string, unknown> = {
        name: need(positionals, 1, 'VM name'),
        vcpus: Number(values.vcpus),
        memoryMiB: Number(values.memory),
        // --pool: where the disks go (default: the host's local pool)
        disks: (values.disk ?? []).map(parseDisk).map((d) => ({
          ...d,
          ...(values.pool ? { pool: values.pool } : {}),
          ...(values['disk-bus'] ? { bus: values['disk-bus'] } : {}),
          ...diskIoFlags(values),
        })),
        networks: (values.network ?? ['default'])
          .filter((n) => n !== 'none')
          .map((network) => ({ network, ...(values['nic-model'] ? { model: values['nic-model'] } : {}) })),
        start: values.start,
        agent: !values['no-agent'],
        ...hardwareFlags(values),
        ...onBootFlags(values),
        ...cloudInitFlags(values),
        ...(values.media !== undefined ? { media: values.media ? { image: values.media } : {} } : {}),
      };
      if (values.kernel) {
        const boot: Record<string, string> = { kernel: values.kernel };
        if (values.initrd) boot.initrd = values.initrd;
        if (values.cmdline) boot.cmdline = values.cmdline;
        body.boot = boot;
      } else if (values.cdrom) body.boot = { cdrom: values.cdrom };
      else if (values['boot-disk'] !== undefined) body.boot = { disk: Number(values['boot-disk']) };
      else if ((values.disk ?? []).length > 0) body.boot = { disk: 0 };
      else
        throw new NfError(
          'validation_failed',
          'say how the VM boots: --cdrom IMAGE, --kernel PATH, or a --disk',
        );
      if (values.machine) body.machine = values.machine;
      if (values.description) body.description = values.description;
      if (values.tag?.length) body.tags = values.tag;
      return show(await api.request<Vm>('POST', '/api/v1/vms', body));
    }
    case 'start':
    case 'pause':
    case 'resume':
    case 'reset':
      return show(
        await api.request<Vm>('POST', `/api/v1/vms/${enc(need(positionals, 1, 'VM name'))}/${sub}`),
      );
    case 'stop':
    case 'reboot': {
      const q = new URLSearchParams();
      if (values.force) q.set('force', 'true');
      if (values.timeout) q.set('timeoutSec', values.timeout);
      const qs = q.size > 0 ? `?${q}` : '';
      return show(
        await api.request<Vm>('POST', `/api/v1/vms/${enc(need(positionals, 1, 'VM name'))}/${sub}${qs}`),
      );
    }
    case 'disk': {
      // vm disk add NAME GIB [--pool P] [--disk-bus B] | vm disk remove NAME DISK [--delete-volume]
      const op = need(positionals, 1, 'add|remove');
      const ref = enc(need(positionals, 2, 'VM name'));
      if (op === 'add')
        return show(
          await api.request<Vm>('POST', `/api/v1/vms/${ref}/disks`, {
            sizeGiB: Number(need(positionals, 3, 'size in GiB')),
            ...(values.pool ? { pool: values.pool } : {}),
            ...(values['disk-bus'] ? { bus: values['disk-bus'] } : {}),
            ...diskIoFlags(values),
          }),
        );
      if (op === 'io') {
        // vm disk io NAME DISK [--disk-cache MODE] [--disk-aio ENGINE] (while the VM is stopped)
        const disk = enc(need(positionals, 3, 'disk (disk0, ...)'));
        return show(await api.request<Vm>('PATCH', `/api/v1/vms/${ref}/disks/${disk}`, diskIoFlags(values)));
      }
      if (op === 'limit') {
        // vm disk limit NAME DISK [--iops N] [--bps N] (0 or none given: no limits)
        const disk = enc(need(positionals, 3, 'disk (disk0, ...)'));
        const limits: Record<string, number> = {};
        if (values.iops !== undefined) limits.iops = Number(values.iops);
        if (values.bps !== undefined) limits.bps = Number(values.bps);
        return show(await api.request<Vm>('PATCH', `/api/v1/vms/${ref}/disks/${disk}`, { limits }));
      }
      if (op === 'remove') {
        const disk = enc(need(positionals, 3, 'disk (disk1, ...)'));
        const q = values['delete-volume'] ? '?deleteVolume=true' : '';
        return show(await api.request<Vm>('DELETE', `/api/v1/vms/${ref}/disks/${disk}${q}`));
      }
      throw new NfError(
        'validation_failed',
        'use: vm disk add NAME GIB | vm disk remove NAME DISK | vm disk limit NAME DISK | vm disk io NAME DISK',
      );
    }
    case 'media': {
      // vm media NAME ISO | vm media NAME --eject
      const ref = enc(need(positionals, 1, 'VM name'));
      const image = values.eject ? null : need(positionals, 2, 'ISO image (or --eject)');
      return show(await api.request<Vm>('POST', `/api/v1/vms/${ref}/media`, { image }));
    }
    case 'nic': {
      // vm nic add NAME [--network N] [--nic-model M] | vm nic remove NAME NIC
      const op = need(positionals, 1, 'add|remove');
      const ref = enc(need(positionals, 2, 'VM name'));
      if (op === 'add')
        return show(
          await api.request<Vm>('POST', `/api/v1/vms/${ref}/networks`, {
            network: values.network?.[0] ?? 'default',
            ...(values['nic-model'] ? { model: values['nic-model'] } : {}),
          }),
        );
      if (op === 'link') {
        // vm nic link NAME NIC up|down
        const nic = enc(need(positionals, 3, 'NIC (net0, ...)'));
        const link = need(positionals, 4, 'up|down');
        return show(await api.request<Vm>('PATCH', `/api/v1/vms/${ref}/networks/${nic}`, { link }));
      }
      if (op === 'remove')
        return show(
          await api.request<Vm>(
            'DELETE',
            `/api/v1/vms/${ref}/networks/${enc(need(positionals, 3, 'NIC (net1, ...)'))}`,
          ),
        );
      throw new NfError('validation_failed', 'use: vm nic add NAME | vm nic remove NAME NIC');
    }
    case 'set': {
      // vm set NAME [--name NEW] [--description D] [--vcpus N] [--memory MIB] [hardware flags]: a running
      // VM's hardware changes at its next cold start (shown as pending)
      const ref = enc(need(positionals, 1, 'VM name'));
      const patch: Record<string, unknown> = {
        ...hardwareFlags(values),
        ...onBootFlags(values),
        ...cloudInitFlags(values),
      };
      if (values.name) patch.name = values.name;
      if (values.description !== undefined) patch.description = values.description;
      // --tag T (repeated) replaces the tags; --no-tags removes them
      if (values.tag?.length) patch.tags = values.tag;
      else if (values['no-tags']) patch.tags = [];
      // (--vcpus and --memory have create's defaults: only what is on the command line counts)
      const given = (flag: string) => argv.some((a) => a === `--${flag}` || a.startsWith(`--${flag}=`));
      if (given('vcpus')) patch.vcpus = Number(values.vcpus);
      if (given('memory')) patch.memoryMiB = Number(values.memory);
      if (values.machine) patch.machine = values.machine;
      if (values['no-tpm']) patch.tpm = false;
      if (values.tablet) patch.tablet = true;
      if (values.kernel)
        patch.boot = {
          kernel: values.kernel,
          ...(values.initrd ? { initrd: values.initrd } : {}),
          ...(values.cmdline ? { cmdline: values.cmdline } : {}),
        };
      else if (values.cdrom) patch.boot = { cdrom: values.cdrom };
      else if (values['boot-disk'] !== undefined) patch.boot = { disk: Number(values['boot-disk']) };
      if (Object.keys(patch).length === 0)
        throw new NfError('validation_failed', 'vm set: say what to change');
      // the copy this change is made on: a change by someone else meanwhile is refused (412), not lost
      const { body: current, headers } = await api.exchange<Vm>('GET', `/api/v1/vms/${ref}`);
      const etag = headers.get('etag');
      // PATCH replaces cloud-init as a whole: what is not given here is kept from the VM, and what the
      // API never shows (a password hash, user-data) cannot be kept, so that is refused
      const ci = patch.cloudInit as Record<string, unknown> | null | undefined;
      const had = current.cloudInit;
      if (ci && had) {
        if (had.passwordSet || had.userData || (had as { networkConfig?: boolean }).networkConfig)
          throw new NfError(
            'validation_failed',
            `VM "${current.name}" has a cloud-init password or documents the API does not show, which this change would drop; change them through the API or the web UI, or --no-cloud-init first`,
          );
        patch.cloudInit = {
          ...(had.hostname ? { hostname: had.hostname } : {}),
          ...(had.sshKeys ? { sshKeys: had.sshKeys } : {}),
          ...ci,
        };
      }
      const vm = await api.request<Vm>('PATCH', `/api/v1/vms/${ref}`, patch, {
        headers: etag ? { 'if-match': etag } : {},
      });
      return show(vm);
    }
    case 'template':
      return show(
        await api.request<Vm>('POST', `/api/v1/vms/${enc(need(positionals, 1, 'VM name'))}/template`),
      );
    case 'clone':
      // vm clone TEMPLATE NEW [--node HOST] [--full]: linked clones of the template's disks (--full: copies);
      // vm clone VM NEW --snapshot S: any VM, running or not, as it was at one of its snapshots (copies)
      return show(
        await api.request<Vm>('POST', `/api/v1/vms/${enc(need(positionals, 1, 'template name'))}/clone`, {
          name: need(positionals, 2, 'name of the new VM'),
          ...(values.node ? { placement: { node: values.node } } : {}),
          ...(values.full ? { full: true } : {}),
          ...(values.snapshot ? { snapshot: values.snapshot } : {}),
        }),
      );
    case 'resize': {
      // vm resize NAME DISK SIZE_GIB: disks only grow; online while the VM runs
      const disk = need(positionals, 2, 'disk (disk0, disk1, ...)');
      const sizeGiB = Number(need(positionals, 3, 'new size in GiB'));
      return show(
        await api.request<Vm>(
          'POST',
          `/api/v1/vms/${enc(need(positionals, 1, 'VM name'))}/disks/${enc(disk)}/resize`,
          {
            sizeGiB,
          },
        ),
      );
    }
    case 'move-disk': {
      // vm move-disk NAME DISK POOL: live while the VM runs; waits for the task and shows its progress
      const vmName = need(positionals, 1, 'VM name');
      const disk = need(positionals, 2, 'disk (disk0, disk1, ...)');
      const pool = need(positionals, 3, 'target pool');
      const started = await api.request<Task>('POST', `/api/v1/vms/${enc(vmName)}/disks/${enc(disk)}/move`, {
        pool,
      });
      const task = await followTask(
        api,
        started,
        `the move of ${vmName}/${disk}`,
        (t) => `moving ${vmName}/${disk} to ${pool}: ${Math.floor(t.progress * 100)}%`,
        values,
        out,
      );
      if (task.status === 'error') throw taskError(task, 'the move failed');
      return show(await api.request<Vm>('GET', `/api/v1/vms/${enc(vmName)}`));
    }
    case 'migrate':
      // vm migrate NAME [--node HOST] ...: live to another host; waits for the task and shows its progress
      return migrateVm(api, need(positionals, 1, 'VM name'), values, out);
    case 'ha':
      // vm ha NAME [--enable|--disable] [--priority P] [--order N] [--isolation R]
      await (await import('./ha')).vmHa(api, need(positionals, 1, 'VM name'), values, out);
      return;
    case 'delete':
      await api.request(
        'DELETE',
        `/api/v1/vms/${enc(need(positionals, 1, 'VM name'))}${values.force ? '?force=true' : ''}`,
      );
      out(`deleted ${name}`);
      return;
    case 'console-log':
      out(
        await api.request<string>('GET', `/api/v1/vms/${enc(need(positionals, 1, 'VM name'))}/console-log`),
      );
      return;
    case 'snapshot':
      await snapshotCommand(api, positionals.slice(1), values, out);
      return;
    case 'guest': {
      const info = await api.request<Record<string, unknown>>(
        'GET',
        `/api/v1/vms/${enc(need(positionals, 1, 'VM name'))}/guest`,
      );
      out(values.json ? JSON.stringify(info, null, 2) : describeGuest(info));
      return;
    }
    case 'exec': {
      // neuroflow vm exec NAME -- program args...
      const command = positionals.slice(2);
      if (command.length === 0)
        throw new NfError('validation_failed', 'use: vm exec NAME -- PROGRAM [ARGS...]');
      const body: Record<string, unknown> = { command };
      if (values.timeout) body.timeoutSec = Number(values.timeout);
      if (!process.stdin.isTTY) body.input = await Bun.stdin.text();
      const r = await api.request<{ exitCode: number | null; stdout: string; stderr: string }>(
        'POST',
        `/api/v1/vms/${enc(need(positionals, 1, 'VM name'))}/guest/exec`,
        body,
      );
      if (values.json) out(JSON.stringify(r, null, 2));
      else {
        process.stdout.write(r.stdout);
        process.stderr.write(r.stderr);
      }
      return r.exitCode ?? 1;
    }
    case 'password': {
      // The password comes on stdin (never on the command line, where ps and shell history would show it).
      const user = values.user ?? 'root';
      const password = process.stdin.isTTY
        ? await promptHidden(`New password for ${user}: `)
        : (await Bun.stdin.text()).replace(/\r?\n$/, '');
      if (!password) throw new NfError('validation_failed', 'give the new password on standard input');
      await api.request('POST', `/api/v1/vms/${enc(need(positionals, 1, 'VM name'))}/guest/password`, {
        username: user,
        password,
      });
      out(`password of ${user} set`);
      return;
    }
    case 'fsfreeze':
    case 'fsthaw':
      out(
        JSON.stringify(
          await api.request('POST', `/api/v1/vms/${enc(need(positionals, 1, 'VM name'))}/guest/${sub}`),
        ),
      );
      return;
    default:
      throw new NfError(
        'validation_failed',
        `unknown "vm ${sub ?? ''}"; use list|show|create|start|stop|reboot|reset|pause|resume|delete|console-log|snapshot|resize|move-disk|migrate|template|clone|guest|exec|password|fsfreeze|fsthaw`,
      );
  }
}

/** A whole-number flag, or undefined when it is not given (the API checks the range). */
export function intFlag(flag: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const n = Number(text);
  if (text.trim() === '' || !Number.isInteger(n))
    throw new NfError('validation_failed', `--${flag} ${text}: give a whole number`);
  return n;
}

interface MigrateFlags {
  node?: string;
  bandwidth?: string;
  'downtime-ms'?: string;
  postcopy?: boolean;
  'time-limit'?: string;
  'no-wait'?: boolean;
  json?: boolean;
}

/**
 * Starts a live migration and, unless --no-wait, follows its task every 500 ms. Ctrl-C asks the API to
 * cancel it (the VM stays on its host) and waits for the outcome; a second Ctrl-C stops waiting.
 */
async function migrateVm(api: ApiClient, vmName: string, values: MigrateFlags, out: Out): Promise<undefined> {
  const policy: Record<string, unknown> = {};
  const downtime = intFlag('downtime-ms', values['downtime-ms']);
  if (downtime !== undefined) policy.downtimeLimitMs = downtime;
  const timeLimit = intFlag('time-limit', values['time-limit']);
  if (timeLimit !== undefined) policy.timeLimitSec = timeLimit;
  if (values.postcopy) policy.postcopy = true;
  const body: Record<string, unknown> = {};
  if (values.node) body.node = values.node;
  const bandwidth = intFlag('bandwidth', values.bandwidth);
  if (bandwidth !== undefined) body.maxBandwidthMiBps = bandwidth;
  if (Object.keys(policy).length > 0) body.policy = policy;
  const task = await api.request<MigrateTask>('POST', `/api/v1/vms/${enc(vmName)}/migrate`, body);
  if (!values['no-wait'] && !values.json && task.details?.why)
    out(`target ${task.details.target}: ${task.details.why}`);
  return finishMigration(api, vmName, task, values, out);
}

/**
 * What follows a started migration (`vm migrate`, `drs apply`): with --no-wait, the task and how to
 * stop it; else follows it to its end and prints the downtime, or throws the task's error.
 */
async function finishMigration(
  api: ApiClient,
  vmName: string,
  started: MigrateTask,
  values: { json?: boolean; 'no-wait'?: boolean },
  out: Out,
): Promise<undefined> {
  if (values['no-wait']) {
    const id = started.id;
    out(
      values.json
        ? JSON.stringify(started, null, 2)
        : `migrating ${vmName}${started.details ? ` to ${started.details.target}` : ''}: task ${id} (neuroflow task cancel ${id} stops it)`,
    );
    return;
  }
  const task = await followTask(
    api,
    started,
    `the migration of ${vmName}`,
    (t) => migrationLine(vmName, t),
    values,
    out,
  );
  if (task.status === 'error') throw taskError(task, 'the migration failed');
  if (values.json) {
    out(JSON.stringify(task, null, 2));
    return;
  }
  const r = task.result;
  out(
    `migrated to ${r?.target ?? task.details?.target ?? '?'}: downtime ${r?.downtimeMs ?? '?'} ms (QEMU), total ${r?.totalMs ?? '?'} ms`,
  );
}

/**
 * Follows a task every 500 ms until it ends, printing `line(task)` whenever it changes (not with --json).
 * For a cancellable task, Ctrl-C asks the API to cancel it and waits for the outcome; a second Ctrl-C
 * stops waiting. Ctrl-C stops any other task's follower at once (the task goes on).
 */
export async function followTask<T extends Task<unknown, unknown>>(
  api: ApiClient,
  started: T,
  what: string,
  line: (task: T) => string,
  values: { json?: boolean },
  out: Out,
): Promise<T> {
  let task = started;
  const id = task.id;
  let interrupts = 0;
  const onInterrupt = () => {
    if (++interrupts > 1) {
      process.stderr.write(`stopped waiting; task ${id} goes on (neuroflow task list)\n`);
      process.exit(130);
    }
    process.stderr.write(`cancelling ${what} (task ${id}); Ctrl-C again to stop waiting\n`);
    api
      .request('POST', `/api/v1/tasks/${enc(id)}/cancel`)
      .catch((err) => process.stderr.write(`cannot cancel: ${(err as Error).message}\n`));
  };
  // Only a cancellable task takes over Ctrl-C; for another, the default (exit) is the right answer.
  const cancellable = started.cancellable === true;
  if (cancellable) process.on('SIGINT', onInterrupt);
  try {
    let shown = '';
    while (task.status === 'running') {
      const text = line(task);
      if (text !== shown && !values.json) out(text);
      shown = text;
      await Bun.sleep(500);
      task = await api.request<T>('GET', `/api/v1/tasks/${enc(id)}`);
    }
  } finally {
    if (cancellable) process.off('SIGINT', onInterrupt);
  }
  return task;
}

/** "migrating web1 h1 -> h2: memory 41%, RAM 512/2048 MiB sent, 1024 MiB left, dirty 12.0 MiB/s, iteration 3". */
function migrationLine(vmName: string, task: MigrateTask): string {
  const d = task.details;
  const mib = (n: number) => Math.round(n / 1048576);
  let line = `migrating ${vmName}${d ? ` ${d.source} -> ${d.target}` : ''}: ${d?.phase ?? 'starting'} ${Math.floor(task.progress * 100)}%`;
  if (d?.ram) {
    const r = d.ram;
    line += `, RAM ${mib(r.transferredBytes)}/${mib(r.totalBytes)} MiB sent, ${mib(r.remainingBytes)} MiB left`;
    line += `, dirty ${(r.dirtyRateBytesPerSec / 1048576).toFixed(1)} MiB/s, iteration ${r.iteration}`;
  }
  if (d?.disks) line += `, disks ${mib(d.disks.doneBytes)}/${mib(d.disks.totalBytes)} MiB`;
  if (task.cancelRequested) line += ' (cancelling)';
  return line;
}

async function snapshotCommand(
  api: ApiClient,
  p: string[],
  values: { json?: boolean; description?: string },
  out: Out,
): Promise<void> {
  const [sub, vm, snap] = p;
  const base = `/api/v1/vms/${enc(need(p, 1, 'VM name'))}/snapshots`;
  switch (sub) {
    case 'create': {
      const body: Record<string, string> = { name: need(p, 2, 'snapshot name') };
      if (values.description) body.description = values.description;
      await api.request('POST', base, body);
      out(`snapshot ${snap} of ${vm} created`);
      return;
    }
    case 'list': {
      const snaps = await api.request<Vm['snapshots']>('GET', base);
      out(
        values.json
          ? JSON.stringify(snaps, null, 2)
          : table(snaps, [
              { key: 'name', title: 'Name' },
              { key: 'createdAt', title: 'Created' },
              { key: 'vmState', title: 'VM state' },
            ]),
      );
      return;
    }
    case 'delete':
      await api.request('DELETE', `${base}/${enc(need(p, 2, 'snapshot name'))}`);
      out(`snapshot ${snap} of ${vm} deleted`);
      return;
    case 'revert':
      await api.request('POST', `${base}/${enc(need(p, 2, 'snapshot name'))}/revert`);
      out(`${vm} reverted to ${snap}`);
      return;
    default:
      throw new NfError('validation_failed', 'use: vm snapshot create|list|delete|revert VM [SNAPSHOT]');
  }
}

/** --disk-cache and --disk-aio as a disk's fields. */
function diskIoFlags(values: { 'disk-cache'?: string; 'disk-aio'?: string }): Record<string, string> {
  return {
    ...(values['disk-cache'] ? { cache: values['disk-cache'] } : {}),
    ...(values['disk-aio'] ? { aio: values['disk-aio'] } : {}),
  };
}

/** The create flags of the VM's virtual hardware: firmware, TPM, CPU model and topology, video, tablet. */
export function hardwareFlags(values: {
  'max-vcpus'?: string;
  'max-memory'?: string;
  'boot-order'?: string;
  firmware?: string;
  'secure-boot'?: boolean;
  tpm?: boolean;
  cpu?: string;
  sockets?: string;
  cores?: string;
  threads?: string;
  'cpu-flag'?: string[];
  video?: string;
  'no-tablet'?: boolean;
}): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (values['max-vcpus']) body.maxVcpus = Number(values['max-vcpus']);
  if (values['max-memory']) body.maxMemoryMiB = Number(values['max-memory']);
  // --boot-order disk0,cd1,net0 (vm set: --boot-order '' goes back to the boot setting)
  if (values['boot-order'] !== undefined)
    body.bootOrder = values['boot-order'] ? values['boot-order'].split(',').map((x) => x.trim()) : null;
  if (values.firmware) body.firmware = values.firmware;
  if (values['secure-boot']) body.secureBoot = true;
  if (values.tpm) body.tpm = true;
  if (values.video) body.video = values.video;
  if (values['no-tablet']) body.tablet = false;
  const cpu: Record<string, unknown> = {};
  if (values.cpu) cpu.model = values.cpu;
  for (const k of ['sockets', 'cores', 'threads'] as const) if (values[k]) cpu[k] = Number(values[k]);
  for (const f of values['cpu-flag'] ?? []) {
    // --cpu-flag +avx2 / -pcid
    const m = /^([+-])(.+)$/.exec(f);
    if (!m) throw new NfError('validation_failed', `--cpu-flag ${f}: give +FLAG or -FLAG`);
    cpu.flags = { ...(cpu.flags as object), [m[2]!]: m[1] === '+' };
  }
  if (Object.keys(cpu).length > 0) body.cpu = cpu;
  return body;
}

/** --on-boot [--on-boot-order N] [--on-boot-delay SEC] | --no-on-boot: autostart when the host comes back. */
export function onBootFlags(values: {
  'on-boot'?: boolean;
  'no-on-boot'?: boolean;
  'on-boot-order'?: string;
  'on-boot-delay'?: string;
}): Record<string, unknown> {
  if (values['no-on-boot']) return { onBoot: { enabled: false } };
  if (!values['on-boot'] && values['on-boot-order'] === undefined && values['on-boot-delay'] === undefined)
    return {};
  const onBoot: Record<string, unknown> = { enabled: true };
  if (values['on-boot-order'] !== undefined) onBoot.order = Number(values['on-boot-order']);
  if (values['on-boot-delay'] !== undefined) onBoot.delaySec = Number(values['on-boot-delay']);
  return { onBoot };
}

/**
 * cloud-init: --ci-hostname NAME, --ssh-key KEY / --ssh-key-file FILE (repeatable), --ci-user-data FILE;
 * --no-cloud-init removes it (vm set). A password is set through the API or the UI (never on a command line).
 */
export function cloudInitFlags(values: {
  'ci-hostname'?: string;
  'ssh-key'?: string[];
  'ssh-key-file'?: string[];
  'ci-user-data'?: string;
  'no-cloud-init'?: boolean;
}): Record<string, unknown> {
  if (values['no-cloud-init']) return { cloudInit: null };
  const read = (f: string) => {
    try {
      return readFileSync(f, 'utf8');
    } catch (err) {
      throw new NfError('file_not_found', `cannot read ${f}: ${(err as Error).message}`);
    }
  };
  const keys = [
    ...(values['ssh-key'] ?? []),
    ...(values['ssh-key-file'] ?? []).flatMap((f) =>
      read(f)
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith('#')),
    ),
  ];
  const ci: Record<string, unknown> = {};
  if (values['ci-hostname']) ci.hostname = values['ci-hostname'];
  if (keys.length > 0) ci.sshKeys = keys;
  if (values['ci-user-data']) ci.userData = read(values['ci-user-data']);
  return Object.keys(ci).length > 0 ? { cloudInit: ci } : {};
}

/** "--disk 10" is a blank 10 GiB disk; "--disk image:NAME[:SIZE]" clones an image. */
export function parseDisk(spec: string): Record<string, unknown> {
  if (spec.startsWith('image:')) {
    const [, image, size] = spec.split(':');
    return size ? { image, sizeGiB: Number(size) } : { image };
  }
  const size = Number(spec);
  if (!Number.isFinite(size) || size <= 0)
    throw new NfError('validation_failed', `--disk ${spec}: give a size in GiB or image:NAME[:GiB]`);
  return { sizeGiB: size };
}

function describeGuest(g: Record<string, unknown>): string {
  const os = (g.os ?? {}) as Record<string, string>;
  const mem = g.memory as { totalBytes: number; usedBytes: number } | null;
  const lines = [
    `Agent:    ${JSON.stringify(g.agent)}`,
    `OS:       ${os['pretty-name'] ?? os.name ?? '-'} (kernel ${os['kernel-release'] ?? '-'})`,
    `Hostname: ${g.hostname}`,
    `IPs:      ${(g.ips as string[]).join(', ') || '-'}`,
    `Memory:   ${mem ? `${bytes(mem.usedBytes)} used of ${bytes(mem.totalBytes)}` : '-'}`,
    `Uptime:   ${g.uptimeSec ?? '-'} s`,
  ];
  type Fs = { mountpoint: string; type: string; usedBytes: number | null; totalBytes: number | null };
  for (const f of (g.filesystems as Fs[]) ?? []) {
    const used = f.usedBytes === null ? '?' : bytes(f.usedBytes);
    const total = f.totalBytes === null ? '?' : bytes(f.totalBytes);
    lines.push(`FS:       ${f.mountpoint} ${f.type} ${used} used of ${total}`);
  }
  return lines.join('\n');
}

function describeVm(vm: Vm): string {
  const lines = [
    `Name:     ${vm.name}`,
    `Id:       ${vm.id}`,
    `State:    ${vm.state}${vm.reason ? ` (${vm.reason})` : ''}`,
    `Node:     ${vm.node}`,
    ...(vm.tags?.length ? [`Tags:     ${vm.tags.join(', ')}`] : []),
    `vCPUs:    ${vm.vcpus}${vm.cpu ? ` (${cpuText(vm.cpu)})` : ''}`,
    `Memory:   ${vm.memoryMiB} MiB${vm.maxMemoryMiB ? ` (hot-add up to ${vm.maxMemoryMiB} MiB)` : ''}`,
    `Firmware: ${vm.firmware ?? 'bios'}${vm.secureBoot ? ', Secure Boot' : ''}${vm.tpm ? ', TPM 2.0' : ''}`,
    ...(vm.onBoot?.enabled
      ? [`On boot:  start, order ${vm.onBoot.order}, then wait ${vm.onBoot.delaySec} s`]
      : []),
    ...(vm.cloudInit
      ? [
          `Cloud-init: hostname ${vm.cloudInit.hostname ?? vm.name}, ${vm.cloudInit.sshKeys?.length ?? 0} SSH key(s)${vm.cloudInit.passwordSet ? ', password set' : ''}${vm.cloudInit.userData ? ', own user-data' : ''}`,
        ]
      : []),
    `Agent:    ${vm.agent.status}${vm.agent.version ? ` ${vm.agent.version}` : ''}`,
  ];
  for (const d of vm.disks)
    lines.push(`Disk:     ${d.id} ${bytes(d.sizeBytes)} ${d.bus ?? 'virtio-blk'} (${d.volume})`);
  for (const n of vm.networks ?? [])
    lines.push(`NIC:      ${n.id} ${n.network} ${n.model ?? 'virtio'} ${n.mac}`);
  if (vm.pendingChanges && Object.keys(vm.pendingChanges).length > 0)
    lines.push(
      `Pending:  ${Object.entries(vm.pendingChanges)
        .map(([k, v]) => `${k}=${typeof v === 'object' ? JSON.stringify(v) : v}`)
        .join(', ')} (at the next stop and start)`,
    );
  for (const s of vm.snapshots) lines.push(`Snapshot: ${s.name} (${s.createdAt}, ${s.vmState})`);
  return lines.join('\n');
}

export async function nodeCommand(argv: string[], out: Out): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GLOBAL,
      force: { type: 'boolean', default: false },
      'no-wait': { type: 'boolean', default: false },
    },
  });
  const api = client(values);
  const sub = positionals[0];
  if (sub === 'maintenance') {
    const name = need(positionals, 1, 'host name');
    const on = need(positionals, 2, 'on|off');
    if (on !== 'on' && on !== 'off')
      throw new NfError('validation_failed', 'use: node maintenance NAME on|off [--no-wait]');
    const host = await api.request<{ evacuationTask?: string }>(
      'PATCH',
      `/api/v1/nodes/${encodeURIComponent(name)}`,
      { maintenance: on === 'on' },
    );
    const id = host.evacuationTask;
    if (on === 'off' || !id || values['no-wait']) {
      const text =
        on === 'off'
          ? `host ${name}: maintenance off (VMs that left it are not moved back; DRS may rebalance)`
          : `host ${name}: maintenance on${id ? `; evacuation task ${id} (neuroflow task cancel ${id} stops it)` : ''}`;
      out(values.json ? JSON.stringify(host, null, 2) : text);
      return;
    }
    if (!values.json) out(`host ${name}: maintenance on; evacuating its VMs: task ${id} (Ctrl-C cancels)`);
    return evacuate(api, name, id, values, out);
  }
  if (sub === 'remove') {
    const name = need(positionals, 1, 'host name');
    await api.request(
      'DELETE',
      `/api/v1/nodes/${encodeURIComponent(name)}${values.force ? '?force=true' : ''}`,
    );
    out(`host ${name} removed from the cluster`);
    return;
  }
  if (sub !== 'list')
    throw new NfError(
      'validation_failed',
      'use: node list | node maintenance NAME on|off [--no-wait] | node remove NAME [--force]',
    );
  const nodes = await api.request<Record<string, unknown>[]>('GET', '/api/v1/nodes');
  out(
    values.json
      ? JSON.stringify(nodes, null, 2)
      : table(
          nodes.map((n) => ({
            ...n,
            name: n.leader ? `${n.name} *` : n.name,
            memory:
              n.memoryAvailableBytes === null
                ? bytes(n.memoryTotalBytes as number)
                : `${bytes(n.memoryAvailableBytes as number)} free of ${bytes(n.memoryTotalBytes as number)}`,
            vmCount: `${(n.vms as { running: number }).running}/${(n.vms as { total: number }).total}`,
            // armed: it runs HA VMs and a hung serve would reset it; idle: fed only once HA VMs run there
            watchdogState: n.watchdog
              ? (n.watchdog as { armed: boolean }).armed
                ? 'armed'
                : 'idle'
              : 'none',
          })),
          [
            { key: 'name', title: 'Name (* leader)' },
            { key: 'role', title: 'Role' },
            { key: 'state', title: 'State' },
            { key: 'cpus', title: 'CPUs' },
            { key: 'memory', title: 'Memory' },
            { key: 'accelerator', title: 'Accel' },
            { key: 'vmCount', title: 'VMs (running/all)' },
            { key: 'watchdogState', title: 'Watchdog' },
            { key: 'lastHeartbeat', title: 'Last heartbeat' },
          ],
        ),
  );
}

/** A node.evacuate task: what moved where, what stayed and why, what is moving now. */
type EvacuateTask = Task<
  {
    phase: 'planning' | 'migrating' | 'done';
    total?: number;
    moved: { vm: string; to: string }[];
    stayed: { vm: string; reason: string }[];
    moving: string[];
  },
  { moved: number; stayed: number }
>;

/** Follows the evacuation of a host put in maintenance; exits non-zero (with what stayed) unless all moved. */
async function evacuate(
  api: ApiClient,
  host: string,
  id: string,
  values: { json?: boolean },
  out: Out,
): Promise<void> {
  const started = await api.request<EvacuateTask>('GET', `/api/v1/tasks/${enc(id)}`);
  const task = await followTask(
    api,
    started,
    `the evacuation of ${host}`,
    (t) => evacuationLine(host, t),
    values,
    out,
  );
  if (!values.json) for (const line of evacuationSummary(host, task)) out(line);
  if (task.status === 'error') throw taskError(task, `VMs stay on ${host}`);
  if (values.json) out(JSON.stringify(task, null, 2));
}

/** "evacuating h2: 2/3 moved, moving web1, stayed: db1 (pinned to h2 (placement.node))". */
function evacuationLine(host: string, task: EvacuateTask): string {
  const d = task.details;
  if (!d || d.phase === 'planning') return `evacuating ${host}: planning`;
  let line = `evacuating ${host}: ${d.moved.length}/${d.total ?? '?'} moved`;
  if (d.moving.length > 0) line += `, moving ${d.moving.join(', ')}`;
  if (d.stayed.length > 0) line += `, stayed: ${d.stayed.map((x) => `${x.vm} (${x.reason})`).join(', ')}`;
  if (task.cancelRequested) line += ' (cancelling)';
  return line;
}

/** The end of an evacuation: where each VM went; "host h2 is empty" when every VM moved. */
function evacuationSummary(host: string, task: EvacuateTask): string[] {
  const moved = task.details?.moved ?? [];
  const lines = moved.map((m) => `moved ${m.vm} -> ${m.to}`);
  if (task.status === 'ok')
    lines.push(
      moved.length === 0
        ? `host ${host} had no VMs to move`
        : `host ${host} evacuated: ${moved.length} VM(s) moved`,
    );
  return lines;
}

/** `cluster show`, `cluster token create|list|show|revoke`. */
export async function clusterCommand(argv: string[], out: Out): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GLOBAL,
      ttl: { type: 'string', default: '1h' },
      description: { type: 'string' },
      role: { type: 'string', default: 'worker' },
      strategy: { type: 'string' },
      'memory-overcommit': { type: 'string' },
      'vcpu-overcommit': { type: 'string' },
      'default-cpu-model': { type: 'string' },
    },
  });
  const api = client(values);
  const show = (v: unknown) => out(JSON.stringify(v, null, 2));
  if (positionals[0] === 'show') return show(await api.request('GET', '/api/v1/cluster'));
  if (positionals[0] === 'set') {
    // cluster set [--strategy spread|pack] [--memory-overcommit X] [--vcpu-overcommit X] [--default-cpu-model M]
    const policy: Record<string, unknown> = {};
    if (values.strategy) policy.strategy = values.strategy;
    if (values['memory-overcommit']) policy.memoryOvercommit = Number(values['memory-overcommit']);
    if (values['vcpu-overcommit']) policy.vcpuOvercommit = Number(values['vcpu-overcommit']);
    if (values['default-cpu-model']) policy.defaultCpuModel = values['default-cpu-model'];
    await api.request('PATCH', '/api/v1/cluster', { policy });
    const now = await api.request<{ cpu: { model: string; why: string } }>('GET', '/api/v1/cluster');
    return out(`new VMs get CPU model ${now.cpu.model}: ${now.cpu.why}`);
  }
  if (positionals[0] !== 'token')
    throw new NfError(
      'validation_failed',
      'use: cluster show | cluster set [--strategy S] [--default-cpu-model M] ... | cluster token create [--ttl 1h] [--role worker|controller] | token list | token revoke ID',
    );
  switch (positionals[1]) {
    case 'create': {
      const body: Record<string, unknown> = { ttlSec: parseDuration(values.ttl), role: values.role };
      if (values.description) body.description = values.description;
      const t = await api.request<{ token: string; id: string; expiresAt: string }>(
        'POST',
        '/api/v1/cluster/join-tokens',
        body,
      );
      if (values.json) return show(t);
      out(t.token);
      process.stderr.write(
        `join token ${t.id} for a ${values.role}, single use, expires ${t.expiresAt}; on the new host: neuroflow serve --join <token> --listen IP:8006 --name NAME\n`,
      );
      return;
    }
    case 'list': {
      const all = await api.request<Record<string, unknown>[]>('GET', '/api/v1/cluster/join-tokens');
      out(
        values.json
          ? JSON.stringify(all, null, 2)
          : table(all, [
              { key: 'id', title: 'Id' },
              { key: 'status', title: 'Status' },
              { key: 'expiresAt', title: 'Expires' },
              { key: 'usedBy', title: 'Used by' },
              { key: 'createdBy', title: 'Created by' },
            ]),
      );
      return;
    }
    case 'show':
      return show(
        await api.request('GET', `/api/v1/cluster/join-tokens/${need(positionals, 2, 'token id')}`),
      );
    case 'revoke':
      await api.request('DELETE', `/api/v1/cluster/join-tokens/${need(positionals, 2, 'token id')}`);
      out('revoked');
      return;
    default:
      throw new NfError('validation_failed', 'use: cluster token create|list|show|revoke');
  }
}

/** "90s", "15m", "1h", "2d" or plain seconds. */
export function parseDuration(text: string): number {
  const m = /^(\d+)\s*([smhd]?)$/.exec(text.trim());
  if (!m) throw new NfError('validation_failed', `"${text}" is not a duration (e.g. 30m, 1h, 2d)`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

export async function imageCommand(argv: string[], out: Out): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { ...GLOBAL, sha256: { type: 'string' }, pool: { type: 'string' }, name: { type: 'string' } },
  });
  const api = client(values);
  const [sub] = positionals;
  switch (sub) {
    case 'list': {
      const imgs = await api.request<Record<string, unknown>[]>('GET', '/api/v1/images');
      out(
        values.json
          ? JSON.stringify(imgs, null, 2)
          : table(
              imgs.map((i) => ({ ...i, size: bytes(i.sizeBytes as number) })),
              [
                { key: 'name', title: 'Name' },
                { key: 'kind', title: 'Kind' },
                { key: 'format', title: 'Format' },
                { key: 'size', title: 'Size' },
                { key: 'id', title: 'Id' },
              ],
            ),
      );
      return;
    }
    case 'import': {
      const body: Record<string, string> = {
        name: need(positionals, 1, 'image name'),
        path: need(positionals, 2, 'host path'),
      };
      if (values.sha256) body.sha256 = values.sha256;
      out(JSON.stringify(await api.request('POST', '/api/v1/images/import', body), null, 2));
      return;
    }
    case 'upload': {
      const name = need(positionals, 1, 'image name');
      const file = need(positionals, 2, 'file');
      statSync(file);
      const q = new URLSearchParams({ name });
      if (values.sha256) q.set('sha256', values.sha256);
      out(
        JSON.stringify(
          await api.request('POST', `/api/v1/images?${q}`, undefined, {
            raw: Bun.file(file),
            contentType: 'application/octet-stream',
          }),
          null,
          2,
        ),
      );
      return;
    }
    case 'copy': {
      // image copy NAME --pool POOL [--name NEW]: into a shared pool, for linked clones on every host
      const body: Record<string, string> = { pool: values.pool ?? need([], 0, '--pool (a shared pool)') };
      if (values.name) body.name = values.name;
      out(
        JSON.stringify(
          await api.request('POST', `/api/v1/images/${enc(need(positionals, 1, 'image name'))}/copy`, body),
          null,
          2,
        ),
      );
      return;
    }
    case 'delete':
      await api.request('DELETE', `/api/v1/images/${enc(need(positionals, 1, 'image name'))}`);
      out(`deleted ${positionals[1]}`);
      return;
    default:
      throw new NfError(
        'validation_failed',
        'use: image list|import NAME PATH|upload NAME FILE|copy NAME --pool POOL [--name NEW]|delete NAME',
      );
  }
}

/** `task list`, `task cancel ID` (a running migration: the VM stays where it was). */
export async function taskCommand(argv: string[], out: Out): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, allowPositionals: true, options: GLOBAL });
  const api = client(values);
  const sub = positionals[0] ?? 'list';
  if (sub === 'cancel') {
    const id = need(positionals, 1, 'task id');
    const t = await api.request<Task>('POST', `/api/v1/tasks/${enc(id)}/cancel`);
    out(values.json ? JSON.stringify(t, null, 2) : `cancel requested: task ${id} (${t.type} of ${t.target})`);
    return;
  }
  if (sub !== 'list') throw new NfError('validation_failed', 'use: task list | task cancel ID');
  const tasks = await api.request<Record<string, unknown>[]>('GET', '/api/v1/tasks?limit=50');
  out(
    values.json
      ? JSON.stringify(tasks, null, 2)
      : table(
          tasks.map((t) => ({ ...t, error: (t.error as { message?: string } | undefined)?.message })),
          [
            { key: 'startedAt', title: 'Started' },
            { key: 'type', title: 'Type' },
            { key: 'target', title: 'Target' },
            { key: 'user', title: 'User' },
            { key: 'status', title: 'Status' },
            { key: 'error', title: 'Error' },
          ],
        ),
  );
}

const pct = (n: number) => `${Math.round(n * 100)}%`;

/** `neuroflow drs`: mode, threshold, last run, the hosts' loads, recommendations, the last 10 moves. */
function describeDrs(d: DrsStatus): string {
  const tolerance = TOLERANCE[d.threshold];
  const lines = [
    `Mode:      ${d.mode}`,
    `Threshold: ${d.threshold} (1 conservative .. 5 aggressive)${tolerance ? `: moves when hosts differ by more than ${Math.round(tolerance * 100)} points` : ''}`,
    `Last run:  ${d.lastRunAt ?? 'never'} (every ${d.intervalSec} s)`,
    '',
    table(
      d.hosts.map((h) => ({ ...h, cpu: pct(h.cpuLoad), memory: pct(h.memoryLoad) })),
      [
        { key: 'node', title: 'Host' },
        { key: 'cpu', title: 'CPU load' },
        { key: 'memory', title: 'Memory load' },
        { key: 'vms', title: 'VMs' },
      ],
    ),
    '',
  ];
  if (d.recommendations.length === 0) lines.push('Recommendations: none');
  else {
    lines.push('Recommendations (neuroflow drs apply ID):');
    lines.push(
      table(
        d.recommendations.map((r) => ({ ...r, move: `${r.from} -> ${r.to}` })),
        [
          { key: 'id', title: 'Id' },
          { key: 'vmName', title: 'VM' },
          { key: 'move', title: 'Move' },
          { key: 'reason', title: 'Why' },
        ],
      ),
    );
  }
  lines.push('');
  const history = d.history.slice(0, 10);
  if (history.length === 0) lines.push('History: no moves yet');
  else {
    lines.push(`History (last ${history.length}):`);
    lines.push(
      table(
        history.map((h) => ({
          ...h,
          move: `${h.from} -> ${h.to}`,
          by: h.automatic ? 'automatic' : 'manual',
          outcome: h.error ? `${h.status}: ${h.error}` : h.status,
        })),
        [
          { key: 'at', title: 'At' },
          { key: 'vmName', title: 'VM' },
          { key: 'move', title: 'Move' },
          { key: 'by', title: 'By' },
          { key: 'outcome', title: 'Status' },
          { key: 'reason', title: 'Why' },
        ],
      ),
    );
  }
  return lines.join('\n');
}

/** `drs [status]`, `drs set [--mode M] [--threshold N]`, `drs run`, `drs apply REC_ID [--no-wait]`. */
export async function drsCommand(argv: string[], out: Out): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GLOBAL,
      mode: { type: 'string' },
      threshold: { type: 'string' },
      'no-wait': { type: 'boolean', default: false },
    },
  });
  const api = client(values);
  const show = (d: DrsStatus) => out(values.json ? JSON.stringify(d, null, 2) : describeDrs(d));
  const sub = positionals[0] ?? 'status';
  switch (sub) {
    case 'status':
      return show(await api.request<DrsStatus>('GET', '/api/v1/drs'));
    case 'set': {
      const body: Record<string, unknown> = {};
      if (values.mode !== undefined) {
        if (!['off', 'manual', 'automatic'].includes(values.mode))
          throw new NfError('validation_failed', `--mode ${values.mode}: use off, manual or automatic`);
        body.mode = values.mode;
      }
      const threshold = intFlag('threshold', values.threshold);
      if (threshold !== undefined) body.threshold = threshold;
      if (Object.keys(body).length === 0)
        throw new NfError(
          'validation_failed',
          'use: drs set [--mode off|manual|automatic] [--threshold 1-5]',
        );
      const d = await api.request<DrsStatus>('PUT', '/api/v1/drs', body);
      out(values.json ? JSON.stringify(d, null, 2) : `DRS: mode ${d.mode}, threshold ${d.threshold}`);
      return;
    }
    case 'run':
      return show(await api.request<DrsStatus>('POST', '/api/v1/drs/run'));
    case 'apply': {
      const id = need(positionals, 1, 'recommendation id (neuroflow drs lists them)');
      const task = await api.request<MigrateTask>('POST', `/api/v1/drs/recommendations/${enc(id)}/apply`);
      // A vm.migrate task's target is the VM's name.
      await finishMigration(api, task.target, task, values, out);
      return;
    }
    default:
      throw new NfError(
        'validation_failed',
        `unknown "drs ${sub}"; use: drs [status] | drs set [--mode off|manual|automatic] [--threshold 1-5] | drs run | drs apply REC_ID [--no-wait]`,
      );
  }
}

/** Reads a line from the terminal without echoing it. */
function promptHidden(question: string): Promise<string> {
  process.stderr.write(question);
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let value = '';
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString('utf8')) {
        if (ch === '\r' || ch === '\n') {
          done();
          resolve(value);
          return;
        }
        if (ch === '\u0003') {
          done();
          reject(new NfError('validation_failed', 'cancelled'));
          return;
        }
        value = ch === '\u007f' ? value.slice(0, -1) : value + ch;
      }
    };
    const done = () => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write('\n');
    };
    stdin.on('data', onData);
  });
}
