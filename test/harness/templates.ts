import { expect } from 'vitest';
import type { TestDaemon } from './daemon';
import { rejection } from './errors';
import { BOOTED } from './guest';
import { guestRun, waitConsole } from './serial';
import { createVm, kernelVm, type VmView, vmAction } from './vms';

/**
 * A VM on `pool` writes a marker on its disk, becomes a template (never started again), and two linked
 * clones of it, made at the same time, see the marker; the template cannot go while they exist.
 */
export async function templateAndClones(d: TestDaemon, pool: string): Promise<void> {
  const tag = `tpl-${pool}`;
  const tpl = await createVm(d.api, kernelVm(tag, { disks: [{ sizeGiB: 1, pool }] }));
  await vmAction(d.api, tpl.id, 'start');
  await waitConsole(d.api, tpl.id, new RegExp(BOOTED));
  await guestRun(d.api, d.dataDir, tpl.id, `echo ${tag}-data > /dev/vda && sync`);
  await vmAction(d.api, tpl.id, 'stop', '?force=true');
  const made = await d.api.request<VmView & { template?: boolean }>('POST', `/api/v1/vms/${tpl.id}/template`);
  expect(made.template).toBe(true);
  const start = await rejection(vmAction(d.api, tpl.id, 'start'));
  expect(start.code).toBe('invalid_state');
  expect(start.message).toMatch(/is a template; clone it/);

  const clones = await Promise.all(
    [1, 2].map((n) =>
      d.api.request<VmView & { disks: { cloneOf?: { vm: string } }[] }>(
        'POST',
        `/api/v1/vms/${tpl.id}/clone`,
        {
          name: `${tag}-clone${n}`,
        },
      ),
    ),
  );
  for (const c of clones) {
    expect(c.state).toBe('stopped');
    expect(c.node).toBe(tpl.node);
    expect(c.disks[0]!.cloneOf?.vm).toBe(tpl.id);
  }
  const q = pool === 'local' ? `?node=${encodeURIComponent(tpl.node)}` : '';
  const vols = await d.api.request<{ name: string; parent?: string }[]>(
    'GET',
    `/api/v1/pools/${pool}/volumes${q}`,
  );
  for (const c of clones)
    expect(vols.find((v) => v.name === c.disks[0]!.volume)?.parent).toBe(tpl.disks[0]!.volume);

  await vmAction(d.api, clones[0]!.id, 'start');
  await waitConsole(d.api, clones[0]!.id, new RegExp(BOOTED));
  expect((await guestRun(d.api, d.dataDir, clones[0]!.id, `head -c ${tag.length + 5} /dev/vda`)).trim()).toBe(
    `${tag}-data`,
  );
  const busy = await rejection(d.api.request('DELETE', `/api/v1/vms/${tpl.id}`));
  expect(busy.code).toBe('in_use');
  expect(busy.message).toContain(`${tag}-clone1`);
  for (const c of clones) await d.api.request('DELETE', `/api/v1/vms/${c.id}?force=true`);
  await d.api.request('DELETE', `/api/v1/vms/${tpl.id}`);
}
