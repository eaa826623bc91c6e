import { statSync } from 'node:fs';
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { NfError } from '../errors';
import { client, followTask, GLOBAL, need, type Out, type Task } from './commands';

const USAGE =
  'use: import ova|ovf|vmdk FILE [--name NAME] [--network-map SRC=DST]... [--pool P] [--devices auto|virtio|emulated]\n' +
  '                [--vcpus N --memory MIB (a bare VMDK)] [--start] [--host-path] [--dry-run]';

type ImportTask = Task<
  { disk?: string; bytesConverted?: number; bytesTotal?: number },
  { vm: string; name: string; notes: string[] }
>;

/**
 * `neuroflow import ova FILE`: uploads FILE (or, with --host-path, names a file on the API's host), shows
 * the mapped hardware, then follows the import task to the new VM. --dry-run stops after the mapping.
 */
export async function importCommand(argv: string[], out: Out): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GLOBAL,
      name: { type: 'string' },
      'network-map': { type: 'string', multiple: true },
      pool: { type: 'string' },
      devices: { type: 'string' },
      vcpus: { type: 'string' },
      memory: { type: 'string' },
      start: { type: 'boolean', default: false },
      'host-path': { type: 'boolean', default: false },
      'dry-run': { type: 'boolean', default: false },
    },
  });
  const kind = need(positionals, 0, 'ova|ovf|vmdk');
  if (!['ova', 'ovf', 'vmdk'].includes(kind)) throw new NfError('validation_failed', USAGE);
  const file = need(positionals, 1, 'FILE');
  const api = client(values);
  let path = file;
  if (!values['host-path']) {
    if (kind === 'ovf')
      throw new NfError(
        'validation_failed',
        'an OVF names its disks beside it: pack it as an OVA, or give --host-path',
      );
    statSync(file);
    process.stderr.write(`uploading ${basename(file)} ...\n`);
    path = (
      await api.request<{ path: string }>(
        'POST',
        `/api/v1/imports/files?${new URLSearchParams({ filename: basename(file) })}`,
        undefined,
        { raw: Bun.file(file), contentType: 'application/octet-stream' },
      )
    ).path;
  }
  const body: Record<string, unknown> = { source: { path } };
  if (values.name) body.name = values.name;
  if (values.pool) body.pool = values.pool;
  if (values.devices) body.devices = values.devices;
  if (values.vcpus) body.vcpus = Number(values.vcpus);
  if (values.memory) body.memoryMiB = Number(values.memory);
  if (values.start) body.start = true;
  if (values['network-map']?.length) {
    const map: Record<string, string> = {};
    for (const m of values['network-map']) {
      const i = m.lastIndexOf('=');
      if (i <= 0) throw new NfError('validation_failed', `--network-map ${m}: give SRC=DST`);
      map[m.slice(0, i)] = m.slice(i + 1);
    }
    body.networkMap = map;
  }
  // an upload that is not imported goes again (an import deletes its upload itself once it ran)
  const discard = async () => {
    if (!values['host-path'])
      await api.request('DELETE', `/api/v1/imports/files?${new URLSearchParams({ path })}`).catch(() => {});
  };
  const plan = await api
    .request<{
      name: string;
      vm: {
        vcpus: number;
        memoryMiB: number;
        firmware: string;
        disks: { label: string; bus: string; from: string; sizeBytes: number }[];
        networks: { label: string; network: string; model: string; from: string }[];
      };
      notes: string[];
    }>('POST', '/api/v1/imports/inspect', body)
    .catch(async (err) => {
      await discard();
      throw err;
    });
  if (values.json && values['dry-run']) {
    await discard();
    out(JSON.stringify(plan, null, 2));
    return 0;
  }
  if (!values.json) {
    out(`${plan.name}: ${plan.vm.vcpus} vCPU, ${plan.vm.memoryMiB} MiB, ${plan.vm.firmware}`);
    for (const d of plan.vm.disks)
      out(`  ${d.label}: ${d.from} -> ${d.bus}, ${Math.round(d.sizeBytes / 1048576)} MiB`);
    for (const n of plan.vm.networks) out(`  ${n.label}: ${n.from} -> ${n.model} on ${n.network}`);
    for (const note of plan.notes) out(`  note: ${note}`);
  }
  if (values['dry-run']) {
    await discard();
    return 0;
  }
  const started = await api.request<ImportTask>('POST', '/api/v1/imports', body).catch(async (err) => {
    await discard();
    throw err;
  });
  const done = await followTask(
    api,
    started,
    `the import of ${plan.name}`,
    (t) =>
      `importing ${plan.name}: ${Math.floor(t.progress * 100)}%${t.details?.disk ? `, ${t.details.disk}` : ''}${t.details?.bytesTotal ? ` (${Math.round((t.details.bytesConverted ?? 0) / 1048576)}/${Math.round(t.details.bytesTotal / 1048576)} MiB)` : ''}`,
    values,
    out,
  );
  if (values.json) out(JSON.stringify(done, null, 2));
  if (done.status !== 'ok') {
    process.stderr.write(`import failed: ${done.error?.message ?? done.status}\n`);
    return 1;
  }
  if (!values.json) out(`imported as VM ${done.result?.name} (${done.result?.vm})`);
  return 0;
}
