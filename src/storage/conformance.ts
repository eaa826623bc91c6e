/**
 * One conformance suite that every storage driver passes against the real thing (qcow2 files, a Ceph
 * cluster). Data goes in and out through `qemu-io` opening the driver's own -blockdev description, so
 * the suite also proves that QEMU can open what the driver describes.
 */
import { expect, it } from 'vitest';
import { rejection } from '../../test/harness/errors';
import { nestBlockdev } from './blockdev';
import type { StorageDriver } from './driver';

export { nestBlockdev };

import { qemuIo } from './qemu-img';

const MiB = 1024 ** 2;

export interface ConformanceTarget {
  driver: StorageDriver;
  /** Makes an image in the pool that volumes can be cloned from, holding `pattern` in its first MiB. */
  makeImage(name: string, sizeBytes: number, pattern: number): Promise<{ format: 'qcow2' | 'raw' }>;
}

/** Runs qemu-io commands on a volume through the driver's description of it. */
export function io(driver: StorageDriver, volume: string, commands: string[]): Promise<string> {
  return qemuIo(nestBlockdev(driver.blockdev(volume, 'vol')), commands);
}

/** True when the first `bytes` of the volume hold `pattern`. */
async function holds(driver: StorageDriver, volume: string, pattern: number, bytes = 64 * 1024) {
  try {
    const out = await io(driver, volume, [`read -P ${pattern} 0 ${bytes}`]);
    return !/Pattern verification failed/.test(out);
  } catch (err) {
    if (/Pattern verification failed/.test((err as Error).message)) return false;
    throw err;
  }
}

/**
 * Registers the suite's tests for a driver. `target` is called inside each test (after the caller's
 * beforeAll/beforeEach); `unique` gives volume names that do not collide between tests.
 */
export function storageConformance(target: () => ConformanceTarget, unique: (base: string) => string): void {
  it('creates an empty volume of the size asked, listed with its figures, idempotently', async () => {
    const { driver } = target();
    const v = unique('empty');
    await driver.createVolume(v, 64 * MiB);
    await driver.createVolume(v, 64 * MiB); // same again: accepted
    const info = await driver.volumeInfo(v);
    expect(info).toMatchObject({ name: v, virtualBytes: 64 * MiB, snapshots: [] });
    if (driver.capabilities.thin) expect(info!.allocatedBytes).toBeLessThan(64 * MiB);
    expect((await driver.listVolumes()).map((x) => x.name)).toContain(v);
    const usage = await driver.usage();
    expect(usage.volumes).toBeGreaterThanOrEqual(1);
    expect(usage.virtualBytes).toBeGreaterThanOrEqual(64 * MiB);
    expect(usage.totalBytes).toBeGreaterThan(0);
    const cap = await driver.capacity();
    expect(cap.totalBytes).toBeGreaterThan(0);
    expect(cap.freeBytes).toBeLessThanOrEqual(cap.totalBytes);
    // another size under the same name is refused, and the volume is left as it was
    const err = await rejection(driver.createVolume(v, 128 * MiB));
    expect(err.code).toBe('already_exists');
    expect((await driver.volumeInfo(v))?.virtualBytes).toBe(64 * MiB);
  });

  it('keeps what QEMU writes through the driver’s -blockdev description', async () => {
    const { driver } = target();
    const v = unique('data');
    await driver.createVolume(v, 16 * MiB);
    expect(await holds(driver, v, 0xab)).toBe(false);
    await io(driver, v, ['write -P 0xab 0 64k']);
    expect(await holds(driver, v, 0xab)).toBe(true);
    const info = await driver.volumeInfo(v);
    expect(info!.allocatedBytes).toBeGreaterThan(0);
  });

  it('takes a snapshot, rolls back to it, and deletes it (twice is fine)', async () => {
    const { driver } = target();
    if (!driver.capabilities.snapshots) return;
    const v = unique('snap');
    await driver.createVolume(v, 16 * MiB);
    await io(driver, v, ['write -P 0x11 0 64k']);
    await driver.snapshotCreate(v, 'before');
    expect(await driver.hasSnapshot(v, 'before')).toBe(true);
    expect(await driver.hasSnapshot(v, 'other')).toBe(false);
    expect((await driver.volumeInfo(v))?.snapshots).toEqual(['before']);
    await io(driver, v, ['write -P 0x22 0 64k']);
    expect(await holds(driver, v, 0x22)).toBe(true);
    await driver.snapshotRollback(v, 'before');
    expect(await holds(driver, v, 0x11)).toBe(true);
    await driver.snapshotDelete(v, 'before');
    await driver.snapshotDelete(v, 'before');
    expect(await driver.hasSnapshot(v, 'before')).toBe(false);
    expect(await holds(driver, v, 0x11)).toBe(true);
  });

  it('copies a volume as it was at a snapshot into an independent volume, while the source changes', async () => {
    const { driver } = target();
    if (!driver.capabilities.snapshots) return;
    const src = unique('copysrc');
    const copy = unique('copy');
    await driver.createVolume(src, 16 * MiB);
    await io(driver, src, ['write -P 0x31 0 64k']);
    await driver.snapshotCreate(src, 'at');
    await io(driver, src, ['write -P 0x32 0 64k']);
    await driver.resizeVolume(src, 24 * MiB); // grown after the snapshot: the copy gets the size asked, the source's now
    await driver.createVolume(copy, 24 * MiB, { image: src, format: 'raw', volume: true, snapshot: 'at' });
    await driver.createVolume(copy, 24 * MiB, { image: src, format: 'raw', volume: true, snapshot: 'at' });
    expect(await holds(driver, copy, 0x31)).toBe(true);
    expect(await holds(driver, src, 0x32)).toBe(true);
    const info = await driver.volumeInfo(copy);
    expect(info).toMatchObject({ virtualBytes: 24 * MiB, snapshots: [] });
    expect(info?.parent).toBeUndefined();
    // independent: the source and its snapshot go, the copy stays
    await driver.deleteVolume(src);
    expect(await holds(driver, copy, 0x31)).toBe(true);
    const missing = await rejection(
      driver.createVolume(unique('copy2'), 16 * MiB, {
        image: copy,
        format: 'raw',
        volume: true,
        snapshot: 'none',
      }),
    );
    expect(missing.code).toBe('not_found');
    expect((await driver.listVolumes()).map((v) => v.name)).not.toContain(unique('copy2'));
  });

  it('grows a volume and keeps its data; refuses to shrink it', async () => {
    const { driver } = target();
    const v = unique('grow');
    await driver.createVolume(v, 16 * MiB);
    await io(driver, v, ['write -P 0x33 0 64k']);
    await driver.resizeVolume(v, 32 * MiB);
    expect((await driver.volumeInfo(v))?.virtualBytes).toBe(32 * MiB);
    expect(await holds(driver, v, 0x33)).toBe(true);
    await io(driver, v, [`write -P 0x44 ${31 * MiB} 64k`]); // the new end is writable
    const err = await rejection(driver.resizeVolume(v, 16 * MiB));
    expect(err.code).toBe('validation_failed');
    expect((await driver.volumeInfo(v))?.virtualBytes).toBe(32 * MiB);
  });

  it('makes a linked clone that sees its image and leaves the image alone', async () => {
    const t = target();
    const { driver } = t;
    if (!driver.capabilities.linkedClones) return;
    const image = unique('image');
    const { format } = await t.makeImage(image, 16 * MiB, 0x55);
    const clone = unique('clone');
    await driver.createVolume(clone, undefined, { image, format });
    await driver.createVolume(clone, undefined, { image, format }); // idempotent too
    const info = await driver.volumeInfo(clone);
    expect(info?.virtualBytes).toBe(16 * MiB);
    expect(info?.parent).toBe(image);
    expect(await holds(driver, clone, 0x55)).toBe(true);
    await io(driver, clone, ['write -P 0x66 0 64k']);
    expect(await holds(driver, clone, 0x66)).toBe(true);
    // a clone that is larger than its image
    const big = unique('bigclone');
    await driver.createVolume(big, 32 * MiB, { image, format });
    expect((await driver.volumeInfo(big))?.virtualBytes).toBe(32 * MiB);
    expect(await holds(driver, big, 0x55)).toBe(true);
    // flattened: no parent any more, and the same data
    await driver.flattenVolume(clone);
    const flat = await driver.volumeInfo(clone);
    expect(flat?.parent).toBeUndefined();
    expect(flat?.virtualBytes).toBe(16 * MiB);
    expect(await holds(driver, clone, 0x66)).toBe(true);
    const tail = await io(driver, clone, ['read -P 0x55 65536 65536']);
    expect(tail).not.toMatch(/Pattern verification failed/);
    await driver.flattenVolume(clone); // nothing to do: fine
    expect((await rejection(driver.flattenVolume(unique('missing')))).code).toBe('not_found');
    await driver.deleteVolume(clone);
    await driver.deleteVolume(big);
  });

  it('deletes a volume with its snapshots; deleting it again is fine', async () => {
    const { driver } = target();
    const v = unique('gone');
    await driver.createVolume(v, 8 * MiB);
    if (driver.capabilities.snapshots) await driver.snapshotCreate(v, 's1');
    await driver.deleteVolume(v);
    expect(await driver.volumeInfo(v)).toBeUndefined();
    expect((await driver.listVolumes()).map((x) => x.name)).not.toContain(v);
    await driver.deleteVolume(v);
  });

  it('refuses names that are not volume names', async () => {
    const { driver } = target();
    for (const bad of ['../x', 'a/b', '', '.hidden'])
      expect((await rejection(driver.createVolume(bad, 8 * MiB))).code).toBe('validation_failed');
  });
}
