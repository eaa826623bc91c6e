import { createWriteStream, existsSync, renameSync, rmSync, statSync } from 'node:fs';
import { basename } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parseArgs } from 'node:util';
import { NfError } from '../errors';
import { client, followTask, GLOBAL, need, type Out, type Task } from './commands';
import { table } from './table';

const USAGE = `use: backup repo list | repo add NAME PATH [--shared] [--encrypt] | repo rm NAME | repo verify NAME | repo gc NAME
     backup job list | job add NAME --schedule S --repository R (--all | --vm VM... | --tag T...) [--keep-last N]
                [--keep-hourly N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] [--keep-yearly N]
     backup job run NAME | job enable|disable NAME | job rm NAME
     backup create VM --repository R [--notes TEXT]
     backup list [--repository R] [--vm VM] | show ID | rm ID | verify ID
     backup restore ID --name NEW [--pool P] [--start] | restore ID --in-place | boot-verify ID [--timeout SEC]
     backup files ID [FS [PATH]] | download ID FS PATH [--output FILE|-]
     (--repository R on show/rm/verify/restore/files when an id is in several repositories)`;

interface BackupDisk {
  id: string;
  sizeBytes: number;
  mode: 'full' | 'incremental';
  base?: string;
  fullReason?: string;
  readBytes: number;
  chunksRead: number;
  newChunks: number;
  newBytesStored: number;
  zeroChunks: number;
}
interface Backup {
  id: string;
  repository: string;
  vm: { id: string; name: string };
  startedAt: string;
  endedAt: string;
  pointInTime: string;
  consistency: string;
  consistencyNote?: string;
  sizeBytes: number;
  disks: BackupDisk[];
  notes?: string;
}
interface Repo {
  name: string;
  path: string;
  node: string;
  backups?: number;
  usage?: { chunks: number; bytes: number };
  error?: string;
}
interface Job {
  name: string;
  schedule: string;
  repository: string;
  selection: { all?: boolean; vms?: string[]; tags?: string[] };
  enabled: boolean;
  running: boolean;
  nextRunAt?: string;
  lastRunAt?: string;
  lastStatus?: string;
}
type AnyTask = Task<Record<string, unknown>, Record<string, unknown>>;

const mib = (b: number) => `${(b / 1048576).toFixed(b < 10 * 1048576 ? 1 : 0)} MiB`;
const modes = (b: Backup) => [...new Set(b.disks.map((d) => d.mode))].join('+');

function describe(b: Backup): string[] {
  const lines = [
    `${b.id}  VM ${b.vm.name}  in ${b.repository}`,
    `  taken ${b.pointInTime} (${b.consistency}${b.consistencyNote ? `: ${b.consistencyNote}` : ''})`,
  ];
  for (const d of b.disks)
    lines.push(
      `  ${d.id}: ${mib(d.sizeBytes)}, ${d.mode}${d.base ? ` on ${d.base}` : ''}; read ${mib(d.readBytes)} (${d.chunksRead} chunks), stored ${mib(d.newBytesStored)} new` +
        (d.fullReason ? `\n    full because ${d.fullReason}` : ''),
    );
  if (b.notes) lines.push(`  notes: ${b.notes}`);
  return lines;
}

/** `neuroflow backup ...`: repositories, backups of VMs, restores, verification and GC (all through the API). */
export async function backupCommand(argv: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GLOBAL,
      repository: { type: 'string' },
      vm: { type: 'string', multiple: true },
      notes: { type: 'string' },
      name: { type: 'string' },
      pool: { type: 'string' },
      start: { type: 'boolean', default: false },
      'in-place': { type: 'boolean', default: false },
      timeout: { type: 'string' },
      schedule: { type: 'string' },
      all: { type: 'boolean', default: false },
      'keep-last': { type: 'string' },
      'keep-hourly': { type: 'string' },
      'keep-daily': { type: 'string' },
      'keep-weekly': { type: 'string' },
      'keep-monthly': { type: 'string' },
      'keep-yearly': { type: 'string' },
      output: { type: 'string', short: 'o' },
      tag: { type: 'string', multiple: true },
      shared: { type: 'boolean', default: false },
      encrypt: { type: 'boolean', default: false },
    },
  });
  const api = client(values);
  const sub = positionals[0];
  const enc = encodeURIComponent;
  const repoQuery = values.repository ? `?repository=${enc(values.repository)}` : '';
  const json = (v: unknown) => out(JSON.stringify(v, null, 2));
  /** Follows a task; prints its result (or error); exit 1 if it failed. */
  const follow = async (started: AnyTask, what: string, done: (t: AnyTask) => string[]): Promise<number> => {
    const t = await followTask(
      api,
      started,
      what,
      (x) =>
        `${what}: ${Math.floor(x.progress * 100)}%${x.details?.phase ? ` (${String(x.details.phase)})` : ''}`,
      values,
      out,
    );
    if (values.json) json(t);
    if (t.status !== 'ok') {
      process.stderr.write(`${what} failed: ${t.error?.message ?? t.status}\n`);
      return 1;
    }
    if (!values.json) for (const l of done(t)) out(l);
    // a verification that found damage fails the command (scripts and cron see it)
    return ((t.result?.bad as unknown[] | undefined)?.length ?? 0) > 0 ? 1 : 0;
  };

  switch (sub) {
    case 'repo': {
      const verb = positionals[1];
      if (verb === 'list' || verb === undefined) {
        const repos = await api.request<Repo[]>('GET', '/api/v1/backup/repositories');
        if (values.json) {
          json(repos);
          return 0;
        }
        out(
          table(
            repos.map((r) => ({
              ...r,
              backups: r.backups ?? '',
              used: r.usage ? mib(r.usage.bytes) : '',
              state: r.error ?? 'ok',
            })),
            [
              { key: 'name', title: 'NAME' },
              { key: 'path', title: 'PATH' },
              { key: 'node', title: 'HOST' },
              { key: 'backups', title: 'BACKUPS' },
              { key: 'used', title: 'USED' },
              { key: 'state', title: 'STATE' },
            ],
          ),
        );
        return 0;
      }
      const name = need(positionals, 2, 'NAME');
      if (verb === 'add') {
        const r = await api.request<Repo>('POST', '/api/v1/backup/repositories', {
          name,
          path: need(positionals, 3, 'PATH'),
          ...(values.shared ? { shared: true } : {}),
          ...(values.encrypt ? { encrypt: true } : {}),
        });
        if (values.json) json(r);
        else out(`repository ${r.name} at ${r.path} on ${r.node}`);
        return 0;
      }
      if (verb === 'rm') {
        await api.request('DELETE', `/api/v1/backup/repositories/${enc(name)}`);
        out(`repository ${name} forgotten (its directory and backups stay on disk)`);
        return 0;
      }
      if (verb === 'verify' || verb === 'gc') {
        const t = await api.request<AnyTask>('POST', `/api/v1/backup/repositories/${enc(name)}/${verb}`);
        return follow(t, `${verb} of ${name}`, (x) => verifyLines(x.result ?? {}));
      }
      throw new NfError('validation_failed', USAGE);
    }
    case 'job': {
      const verb = positionals[1];
      if (verb === 'list' || verb === undefined) {
        const jobs = await api.request<Job[]>('GET', '/api/v1/backup/jobs');
        if (values.json) {
          json(jobs);
          return 0;
        }
        out(
          table(
            jobs.map((j) => ({
              ...j,
              vms: j.selection.all
                ? 'all'
                : j.selection.tags
                  ? `tags ${j.selection.tags.join(',')}`
                  : (j.selection.vms ?? []).join(','),
              next: j.enabled ? (j.nextRunAt ?? '') : 'disabled',
              last: j.lastRunAt
                ? `${j.lastRunAt} ${j.lastStatus ?? ''}${j.running ? ' (running)' : ''}`
                : j.running
                  ? 'running'
                  : '',
            })),
            [
              { key: 'name', title: 'NAME' },
              { key: 'schedule', title: 'SCHEDULE' },
              { key: 'repository', title: 'REPOSITORY' },
              { key: 'vms', title: 'VMS' },
              { key: 'next', title: 'NEXT' },
              { key: 'last', title: 'LAST' },
            ],
          ),
        );
        return 0;
      }
      const name = need(positionals, 2, 'NAME');
      if (verb === 'add') {
        if (!values.schedule || !values.repository)
          throw new NfError('validation_failed', 'give --schedule S and --repository R');
        const retention: Record<string, number> = {};
        for (const k of ['last', 'hourly', 'daily', 'weekly', 'monthly', 'yearly'] as const) {
          const v = values[`keep-${k}`];
          if (v !== undefined) retention[`keep${k[0]!.toUpperCase()}${k.slice(1)}`] = Number(v);
        }
        const j = await api.request<Job>('POST', '/api/v1/backup/jobs', {
          name,
          schedule: values.schedule,
          repository: values.repository,
          selection: values.all
            ? { all: true }
            : values.tag?.length
              ? { tags: values.tag }
              : { vms: values.vm ?? [] },
          ...(Object.keys(retention).length ? { retention } : {}),
          ...(values.notes ? { notes: values.notes } : {}),
        });
        if (values.json) json(j);
        else out(`job ${j.name}: next run ${j.nextRunAt ?? 'never'}`);
        return 0;
      }
      if (verb === 'enable' || verb === 'disable') {
        await api.request('PATCH', `/api/v1/backup/jobs/${enc(name)}`, { enabled: verb === 'enable' });
        out(`job ${name} ${verb}d`);
        return 0;
      }
      if (verb === 'rm') {
        await api.request('DELETE', `/api/v1/backup/jobs/${enc(name)}`);
        out(`job ${name} deleted (its backups stay)`);
        return 0;
      }
      if (verb === 'run') {
        const t = await api.request<AnyTask>('POST', `/api/v1/backup/jobs/${enc(name)}/run`);
        return follow(t, `job ${name}`, (x) =>
          (
            (x.result?.vms as {
              vm: string;
              status: string;
              mode?: string;
              error?: string;
              pruned?: number;
            }[]) ?? []
          ).map(
            (v) =>
              `  ${v.vm}: ${v.status}${v.mode ? ` (${v.mode})` : ''}${v.error ? `: ${v.error}` : ''}${v.pruned ? `, ${v.pruned} pruned` : ''}`,
          ),
        );
      }
      throw new NfError('validation_failed', USAGE);
    }
    case 'create': {
      const vm = need(positionals, 1, 'VM');
      if (!values.repository) throw new NfError('validation_failed', 'give --repository R');
      const t = await api.request<AnyTask>('POST', `/api/v1/vms/${enc(vm)}/backup`, {
        repository: values.repository,
        ...(values.notes ? { notes: values.notes } : {}),
      });
      return follow(t, `backup of ${vm}`, (x) => describe(x.result as unknown as Backup));
    }
    case 'list': {
      const q = new URLSearchParams();
      if (values.repository) q.set('repository', values.repository);
      if (values.vm?.[0]) q.set('vm', values.vm[0]);
      const list = await api.request<Backup[]>('GET', `/api/v1/backups${q.size ? `?${q}` : ''}`);
      if (values.json) {
        json(list);
        return 0;
      }
      out(
        table(
          list.map((b) => ({
            id: b.id,
            vm: b.vm.name,
            repository: b.repository,
            taken: b.pointInTime.replace(/\.\d+Z$/, 'Z'),
            consistency: b.consistency,
            mode: modes(b),
            size: mib(b.sizeBytes),
            stored: mib(b.disks.reduce((n, d) => n + d.newBytesStored, 0)),
          })),
          [
            { key: 'id', title: 'ID' },
            { key: 'vm', title: 'VM' },
            { key: 'repository', title: 'REPOSITORY' },
            { key: 'taken', title: 'TAKEN' },
            { key: 'consistency', title: 'CONSISTENCY' },
            { key: 'mode', title: 'MODE' },
            { key: 'size', title: 'SIZE' },
            { key: 'stored', title: 'NEW DATA' },
          ],
        ),
      );
      return 0;
    }
    case 'show': {
      const b = await api.request<Backup>(
        'GET',
        `/api/v1/backups/${enc(need(positionals, 1, 'ID'))}${repoQuery}`,
      );
      if (values.json) json(b);
      else for (const l of describe(b)) out(l);
      return 0;
    }
    case 'rm': {
      const id = need(positionals, 1, 'ID');
      await api.request('DELETE', `/api/v1/backups/${enc(id)}${repoQuery}`);
      out(`backup ${id} deleted (its chunks go at the repository's next gc)`);
      return 0;
    }
    case 'verify': {
      const id = need(positionals, 1, 'ID');
      const t = await api.request<AnyTask>('POST', `/api/v1/backups/${enc(id)}/verify${repoQuery}`);
      return follow(t, `verify of ${id}`, (x) => verifyLines(x.result ?? {}));
    }
    case 'restore': {
      const id = need(positionals, 1, 'ID');
      if (values['in-place']) {
        const t = await api.request<AnyTask>('POST', `/api/v1/backups/${enc(id)}/restore`, {
          inPlace: true,
          ...(values.repository ? { repository: values.repository } : {}),
        });
        return follow(t, `restore of ${id} in place`, (x) => [
          `VM ${String(x.result?.vm)} restored in place (${(x.result?.disks as string[] | undefined)?.join(', ')})`,
        ]);
      }
      if (!values.name) throw new NfError('validation_failed', 'give --name NEW (the new VM), or --in-place');
      const t = await api.request<AnyTask>('POST', `/api/v1/backups/${enc(id)}/restore`, {
        name: values.name,
        ...(values.pool ? { pool: values.pool } : {}),
        ...(values.repository ? { repository: values.repository } : {}),
        ...(values.start ? { start: true } : {}),
      });
      return follow(t, `restore of ${id}`, (x) => [
        `restored as VM ${String(x.result?.vm)} (${String(x.result?.id)})`,
      ]);
    }
    case 'boot-verify': {
      const id = need(positionals, 1, 'ID');
      const t = await api.request<AnyTask>('POST', `/api/v1/backups/${enc(id)}/boot-verify`, {
        ...(values.repository ? { repository: values.repository } : {}),
        ...(values.timeout ? { timeoutSec: Number(values.timeout) } : {}),
      });
      return follow(t, `boot verification of ${id}`, (x) => [
        `passed: the guest agent answered ${Math.round(Number(x.result?.agentAfterMs) / 1000)} s after the start`,
      ]);
    }
    case 'files': {
      const id = enc(need(positionals, 1, 'ID'));
      const fs = positionals[2];
      if (!fs) {
        const list = await api.request<Filesystem[]>('GET', `/api/v1/backups/${id}/files${repoQuery}`);
        if (values.json) json(list);
        else if (list.length === 0) out('no partition or file system found on its disks');
        else
          out(
            table(
              list.map((f) => ({
                fs: f.id,
                type: f.type,
                size: mib(f.sizeBytes),
                label: f.label,
                browse: f.readable
                  ? f.needsRecovery
                    ? 'yes (journal not replayed)'
                    : 'yes'
                  : `no: ${f.reason ?? ''}`,
              })),
              ['fs', 'type', 'size', 'label', 'browse'].map((key) => ({ key, title: key })),
            ),
          );
        return 0;
      }
      const path = positionals[3] ?? '/';
      const q = new URLSearchParams({
        path,
        ...(values.repository ? { repository: values.repository } : {}),
      });
      const dir = await api.request<Directory>('GET', `/api/v1/backups/${id}/files/${enc(fs)}?${q}`);
      if (values.json) json(dir);
      else {
        out(
          table(
            dir.entries.map((e) => ({
              mode: modeString(e.type, e.mode),
              size: e.size,
              modified: e.mtime.slice(0, 19).replace('T', ' '),
              name:
                e.target !== undefined
                  ? `${e.name} -> ${e.target}`
                  : e.type === 'dir'
                    ? `${e.name}/`
                    : e.name,
            })),
            ['mode', 'size', 'modified', 'name'].map((key) => ({ key, title: key })),
          ),
        );
        if (dir.truncated) out(`(only the first ${dir.entries.length} entries)`);
      }
      return 0;
    }
    case 'download': {
      const id = need(positionals, 1, 'ID');
      const fs = need(positionals, 2, 'FS');
      const path = need(positionals, 3, 'PATH');
      const q = new URLSearchParams({
        path,
        ...(values.repository ? { repository: values.repository } : {}),
      });
      const target = values.output ?? basename(path);
      if (target !== '-' && existsSync(target))
        throw new NfError('already_exists', `${target} exists: remove it or give --output`);
      const res = await api.stream(`/api/v1/backups/${enc(id)}/files/${enc(fs)}/download?${q}`);
      if (target === '-') {
        await pipeline(Readable.fromWeb(res.body! as never), process.stdout);
        return 0;
      }
      // written beside, renamed when complete: a broken download leaves no partial file under the name
      const tmp = `${target}.part-${process.pid}`;
      try {
        await pipeline(Readable.fromWeb(res.body! as never), createWriteStream(tmp, { flags: 'wx' }));
        const expected = Number(res.headers.get('content-length'));
        if (Number.isFinite(expected) && statSync(tmp).size !== expected)
          throw new NfError('unavailable', `the download of ${path} ended early`);
        renameSync(tmp, target);
      } catch (err) {
        rmSync(tmp, { force: true });
        throw err;
      }
      out(`${path} → ${target} (${statSync(target).size} bytes)`);
      return 0;
    }
    default:
      throw new NfError('validation_failed', USAGE);
  }
}

interface Filesystem {
  id: string;
  type: string;
  sizeBytes: number;
  label?: string;
  readable: boolean;
  needsRecovery?: boolean;
  reason?: string;
}
interface Directory {
  path: string;
  truncated: boolean;
  entries: { name: string; type: string; size: number; mode: number; mtime: string; target?: string }[];
}

/** ls -l's mode column: the type letter and rwx bits. */
function modeString(type: string, mode: number): string {
  const t = type === 'dir' ? 'd' : type === 'symlink' ? 'l' : type === 'file' ? '-' : '?';
  let bits = '';
  for (let i = 8; i >= 0; i--) bits += (mode >> i) & 1 ? 'rwx'[(8 - i) % 3] : '-';
  return t + bits;
}

function verifyLines(r: Record<string, unknown>): string[] {
  if ('removedChunks' in r)
    return [`removed ${r.removedChunks} chunks (${mib(Number(r.freedBytes))}), kept ${r.keptChunks}`];
  const bad = (r.bad as { chunk: string; error: string; backups: string[] }[] | undefined) ?? [];
  const lines = [
    `${r.backups} backups, ${r.chunks} chunks checked: ${bad.length === 0 ? 'all good' : `${bad.length} bad`}`,
  ];
  for (const b of bad) lines.push(`  chunk ${b.chunk}: ${b.error}; needed by ${b.backups.join(', ')}`);
  return lines;
}
