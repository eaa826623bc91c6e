import { parseArgs } from 'node:util';
import type { HaPolicy } from '../controller/ha/policy';
import type { HaStatus, RecoveryRecord, VmHaView } from '../controller/ha/views';
import { NfError } from '../errors';
import type { ApiClient } from './client';
import { client, enc, GLOBAL, intFlag, type Out } from './commands';
import { table } from './table';

const USAGE = 'use: ha [status] | ha set [--detection SEC] [--tolerate N] [--monitoring-timeout SEC]';

/** Seconds from a recovery's detection to a later time, as "+12.3 s". */
function since(r: RecoveryRecord, iso?: string): string {
  return iso ? `+${((Date.parse(iso) - Date.parse(r.detectedAt)) / 1000).toFixed(1)} s` : '-';
}

/** One recovery as a timeline: detected, fenced, each VM restarted and running, the host back. */
export function describeRecovery(r: RecoveryRecord): string {
  const lines = [
    `${r.detectedAt}  host ${r.host} declared failed (${r.status}${r.durationSec !== undefined ? `, ${r.durationSec} s` : ''}): ${r.reason}`,
    `  fenced      ${since(r, r.fencedAt)}${r.fence ? `  ${r.fence}` : ''}${r.fenceError ? `  (attempt ${r.fenceAttempts} failed: ${r.fenceError})` : ''}`,
  ];
  for (const v of r.vms)
    lines.push(
      `  ${v.name.padEnd(12)}${v.state.padEnd(11)}${v.target ? `on ${v.target} ` : ''}restarted ${since(r, v.restartedAt)}, running ${since(r, v.runningAt)}${v.error ? `  (${v.error})` : ''}`,
    );
  for (const u of r.unprotected) lines.push(`  ${u.name.padEnd(12)}not restarted: ${u.reason}`);
  if (r.returnedAt) lines.push(`  host back   ${since(r, r.returnedAt)}`);
  return lines.join('\n');
}

export function describeHa(s: HaStatus): string {
  const lines = [
    `Detection:   ${s.settings.detectionSec} s (hosts fence themselves at ${s.settings.detectionSec - 1} s)`,
    `Admission:   ${s.admission.ok ? 'ok' : 'WARNING'}: ${s.admission.message}`,
    `Monitoring:  monitored VMs are reset after ${s.settings.monitoringTimeoutSec} s of a silent agent and no disk I/O`,
    `Protected:   ${s.protectedVms} VM(s)`,
    '',
    table(s.hosts, [
      { key: 'name', title: 'Host' },
      { key: 'state', title: 'HA state' },
    ]),
  ];
  if (s.unprotectedVms.length) {
    lines.push('', 'HA on but not protected:');
    lines.push(
      table(s.unprotectedVms, [
        { key: 'name', title: 'VM' },
        { key: 'reason', title: 'Why' },
      ]),
    );
  }
  lines.push('', s.recoveries.length ? 'Recoveries (newest first):' : 'Recoveries: none');
  for (const r of s.recoveries.slice(0, 5)) lines.push(describeRecovery(r));
  return lines.join('\n');
}

/** `neuroflow ha`: the cluster's HA state and recoveries; `ha set` changes the settings. */
export async function haCommand(argv: string[], out: Out): Promise<void> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      ...GLOBAL,
      detection: { type: 'string' },
      tolerate: { type: 'string' },
      'monitoring-timeout': { type: 'string' },
    },
  });
  const api = client(values);
  const show = (s: HaStatus) => out(values.json ? JSON.stringify(s, null, 2) : describeHa(s));
  switch (positionals[0] ?? 'status') {
    case 'status':
      return show(await api.request<HaStatus>('GET', '/api/v1/ha'));
    case 'set': {
      const body: Record<string, number> = {};
      const detection = intFlag('detection', values.detection);
      const tolerate = intFlag('tolerate', values.tolerate);
      if (detection !== undefined) body.detectionSec = detection;
      if (tolerate !== undefined) body.tolerateHostFailures = tolerate;
      const monitoring = intFlag('monitoring-timeout', values['monitoring-timeout']);
      if (monitoring !== undefined) body.monitoringTimeoutSec = monitoring;
      if (Object.keys(body).length === 0) throw new NfError('validation_failed', USAGE);
      return show(await api.request<HaStatus>('PUT', '/api/v1/ha', body));
    }
    default:
      throw new NfError('validation_failed', `unknown "ha ${positionals[0]}"; ${USAGE}`);
  }
}

export interface VmHaFlags {
  json?: boolean;
  enable?: boolean;
  disable?: boolean;
  priority?: string;
  order?: string;
  isolation?: string;
  monitor?: boolean;
  'no-monitor'?: boolean;
}

/** `vm ha NAME [--enable|--disable] [--priority P] [--order N] [--isolation R]`: shows or changes. */
export async function vmHa(api: ApiClient, name: string, f: VmHaFlags, out: Out): Promise<void> {
  if (f.enable && f.disable) throw new NfError('validation_failed', 'use --enable or --disable, not both');
  const body: Partial<HaPolicy> = {};
  if (f.enable) body.enabled = true;
  if (f.disable) body.enabled = false;
  if (f.priority !== undefined) {
    if (!['high', 'medium', 'low'].includes(f.priority))
      throw new NfError('validation_failed', `--priority ${f.priority}: use high, medium or low`);
    body.priority = f.priority as HaPolicy['priority'];
  }
  if (f.monitor && f['no-monitor'])
    throw new NfError('validation_failed', 'use --monitor or --no-monitor, not both');
  if (f.monitor) body.monitoring = true;
  if (f['no-monitor']) body.monitoring = false;
  const order = intFlag('order', f.order);
  if (order !== undefined) body.restartOrder = order;
  if (f.isolation !== undefined) {
    if (!['poweroff', 'shutdown', 'leave'].includes(f.isolation))
      throw new NfError('validation_failed', `--isolation ${f.isolation}: use poweroff, shutdown or leave`);
    body.isolationResponse = f.isolation as HaPolicy['isolationResponse'];
  }
  const path = `/api/v1/vms/${enc(name)}/ha`;
  const r = await api.request<VmHaView>(
    Object.keys(body).length ? 'PUT' : 'GET',
    path,
    Object.keys(body).length ? body : undefined,
  );
  if (f.json) return out(JSON.stringify(r, null, 2));
  const p = r.policy;
  out(
    [
      `HA:          ${p.enabled ? 'on' : 'off'}`,
      `Priority:    ${p.priority} (restart order ${p.restartOrder})`,
      `Isolation:   ${p.isolationResponse} (what its host does with it when the host loses the cluster)`,
      `Monitoring:  ${p.monitoring ? 'on (reset when its agent is silent and its disks idle)' : 'off'}`,
      `Protection:  ${r.protection.state}${r.protection.reason ? `: ${r.protection.reason}` : ''}`,
      ...(r.monitoring
        ? [
            `Watching:    agent ${r.monitoring.agentSilentForSec !== undefined ? `silent for ${r.monitoring.agentSilentForSec} s` : 'answering'}${r.monitoring.lastIoCheck ? `, disks ${r.monitoring.lastIoCheck.diskIdle ? 'idle' : 'busy'} at ${r.monitoring.lastIoCheck.at}` : ''}, ${r.monitoring.resetsLastHour} reset(s) in the last hour`,
          ]
        : []),
    ].join('\n'),
  );
}
