import { expect } from 'vitest';
import type { TestDaemon } from './daemon';
import { rejection } from './errors';
import { BOOTED } from './guest';
import { guestRun, startAndBoot, waitConsole } from './serial';
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

  // A full clone: its disk is a copy that hangs off nothing, so it outlives the template.
  const full = await d.api.request<VmView & { disks: { cloneOf?: unknown }[] }>(
    'POST',
    `/api/v1/vms/${tpl.id}/clone`,
    { name: `${tag}-full`, full: true },
  );
  expect(full.disks[0]!.cloneOf).toBeUndefined();
  const fullVol = (
    await d.api.request<{ name: string; parent?: string }[]>('GET', `/api/v1/pools/${pool}/volumes${q}`)
  ).find((v) => v.name === full.disks[0]!.volume);
  expect(fullVol).toBeDefined();
  expect(fullVol!.parent).toBeUndefined();

  // Clones of clones: a template whose disk already stands on two parents is flattened first.
  const c1 = clones[1]!;
  await d.api.request('POST', `/api/v1/vms/${c1.id}/template`); // depth 1: stays linked
  expect(
    (await d.api.request<VmView & { disks: { cloneOf?: unknown }[] }>('GET', `/api/v1/vms/${c1.id}`))
      .disks[0]!.cloneOf,
  ).toBeDefined();
  const c2 = await d.api.request<VmView>('POST', `/api/v1/vms/${c1.id}/clone`, { name: `${tag}-gen2` });
  await d.api.request('POST', `/api/v1/vms/${c2.id}/template`); // depth 2: flattened
  const flat = await d.api.request<VmView & { disks: { cloneOf?: unknown }[] }>(
    'GET',
    `/api/v1/vms/${c2.id}`,
  );
  expect(flat.disks[0]!.cloneOf).toBeUndefined();
  const flatVol = (
    await d.api.request<{ name: string; parent?: string }[]>('GET', `/api/v1/pools/${pool}/volumes${q}`)
  ).find((v) => v.name === c2.disks[0]!.volume);
  expect(flatVol!.parent).toBeUndefined();

  for (const id of [c2.id, c1.id, clones[0]!.id])
    await d.api.request('DELETE', `/api/v1/vms/${id}?force=true`);
  await d.api.request('DELETE', `/api/v1/vms/${tpl.id}`);
  // the full clone still boots and holds the template's data
  await startAndBoot(d.api, full.id, () => vmAction(d.api, full.id, 'start'), new RegExp(BOOTED));
  expect((await guestRun(d.api, d.dataDir, full.id, `head -c ${tag.length + 5} /dev/vda`)).trim()).toBe(
    `${tag}-data`,
  );
  await d.api.request('DELETE', `/api/v1/vms/${full.id}?force=true`);
}
