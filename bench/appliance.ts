/**
 * Appliance figures under TCG (QEMU -cpu max, 1 vCPU, 2 GiB): the ISO's size; boot of the live ISO to
 * "NEUROFLOW-APPLIANCE: up"; an unattended install (GRUB entry to power-off); boot of the installed disk
 * (cluster create) to the API answering GET /api/v1/health; memory used at idle (MemTotal - MemAvailable
 * inside the guest, 60 s after the API answered, and the node's own figures from GET /api/v1/nodes).
 * Run: `bun bench/appliance.ts` (after `npm run build`, `npm run build:agent`; builds the ISO if needed).
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import {
  ApplianceVm,
  answerDisk,
  apiGet,
  blankDisk,
  buildIso,
  cleanupVms,
  freePort,
  waitApi,
} from '../test/appliance/vm';
import { record, SMOKE } from './lib';

const PASSWORD = 'bench-password-1';
const s = (ms: number) => Math.round(ms / 100) / 10;
const mib = (b: number) => Math.round(b / 1024 ** 2);

const iso = buildIso();
const files = new ApplianceVm({ name: 'bench-files' });
try {
  const isoBytes = statSync(iso).size;

  // Live ISO: power-on to "up" (the console and the supervisor start after it).
  const live = new ApplianceVm({ name: 'bench-live', iso }).start();
  await live.waitSerial(/NEUROFLOW-APPLIANCE: up in/, 300_000);
  const liveUpMs = performance.now() - live.started;
  await live.destroy();

  if (SMOKE) {
    // the test command's smoke run: the live boot only (the install and the installed disk's boot are
    // test/appliance/iso.test.ts's too, and take minutes under TCG)
    record('appliance', { isoBytes, liveBootToUpSeconds: s(liveUpMs) }, []);
  } else {
    // Unattended install.
    const disk = blankDisk(join(files.dir, 'disk.qcow2'), '10G');
    const answer = join(files.dir, 'answer.img');
    answerDisk(answer, {
      disk: '/dev/vda',
      wipe: true,
      after: 'poweroff',
      config: {
        hostname: 'bench1',
        rootPassword: { plain: PASSWORD },
        cluster: { mode: 'create' },
      },
    });
    const inst = new ApplianceVm({ name: 'bench-install', iso, disks: [disk, answer] }).start();
    await inst.waitSerial(/Install \(unattended answer file\)/, 120_000);
    for (let i = 0; i < 30 && !/Unattended install: answer file/.test(inst.serial(0)) && inst.alive; i++) {
      await inst.type('i');
      await Bun.sleep(2000);
    }
    const done = await inst.waitSerial(/NEUROFLOW-INSTALL: done in ([\d.]+) s/, 900_000, {
      fail: /NEUROFLOW-INSTALL: failed[^\r\n]*/,
    });
    const installerSeconds = Number(/done in ([\d.]+) s/.exec(done)![1]);
    await inst.waitExit(180_000);
    const installTotalMs = performance.now() - inst.started;

    // The installed disk: power-on to "up", to the API.
    const port = await freePort();
    const vm = new ApplianceVm({ name: 'bench-disk', disks: [disk], apiPort: port }).start();
    await vm.waitSerial(/NEUROFLOW-APPLIANCE: up in/, 300_000);
    const diskUpMs = performance.now() - vm.started;
    await waitApi(port, 600_000, vm);
    const apiReadyMs = performance.now() - vm.started;

    await vm.login(PASSWORD);
    const token = (await vm.exec('cat /var/lib/neuroflow/admin.token')).trim();
    await Bun.sleep(SMOKE ? 1000 : 60_000); // idle settles (a figure, not a sync)
    const meminfo = await vm.exec('cat /proc/meminfo');
    const kb = (k: string) =>
      Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(meminfo)?.[1] ?? Number.NaN) * 1024;
    const usedBytes = kb('MemTotal') - kb('MemAvailable');
    const rss = await vm.exec("ps -o rss,args | grep -E 'neuroflow|etcd' | grep -v grep");
    const nodes = (await (await apiGet(port, '/api/v1/nodes', token)).json()) as {
      memoryTotalBytes?: number;
      memoryAvailableBytes?: number;
    }[];
    const node = nodes[0] ?? {};
    await vm.destroy();

    const figures = {
      isoBytes,
      liveBootToUpSeconds: s(liveUpMs),
      installerSeconds,
      installPowerOnToPowerOffSeconds: s(installTotalMs),
      diskBootToUpSeconds: s(diskUpMs),
      diskBootToApiSeconds: s(apiReadyMs),
      idleMemoryUsedBytes: usedBytes,
      nodeMemoryTotalBytes: node.memoryTotalBytes,
      nodeMemoryAvailableBytes: node.memoryAvailableBytes,
      processes: rss.trim().split('\n'),
    };
    record('appliance', figures, [
      `ISO ${mib(isoBytes)} MiB; TCG boot to "up": live ISO ${s(liveUpMs)} s, installed disk ${s(diskUpMs)} s; installed disk to API ready ${s(apiReadyMs)} s`,
      `unattended install ${installerSeconds} s in the installer (${s(installTotalMs)} s power-on to power-off)`,
      `idle memory used (MemTotal - MemAvailable, 2 GiB guest, API + etcd + two consoles): ${mib(usedBytes)} MiB; node API: ${mib((node.memoryTotalBytes ?? 0) - (node.memoryAvailableBytes ?? 0))} MiB used of ${mib(node.memoryTotalBytes ?? 0)} MiB`,
    ]);
  }
} finally {
  await cleanupVms();
  await files.destroy();
}
