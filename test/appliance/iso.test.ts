/**
 * The appliance ISO in QEMU (TCG), two independent flows run side by side (one vCPU each):
 *
 * live: BIOS and UEFI boots, GRUB on the serial console, the system in RAM with the medium released,
 * /var/lib/neuroflow on a tmpfs, no API until a cluster is chosen, then the console's contract (config
 * written + SIGHUP to `appliance serve`) starts it.
 *
 * unattended install: the GRUB entry "Install (unattended answer file)" (hotkey i on the serial console)
 * with an answer file on a small vfat disk labelled NF-ANSWER installs to a blank virtual disk and powers
 * off. Then the disk boots alone (the ISO removed): the host name and root password from the answer file,
 * NF-DATA mounted, cluster.mode create -> the API answers through the forwarded port; a file written to
 * NF-DATA survives a power cycle; the disk also boots with UEFI.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ApplianceVm, answerDisk, apiGet, blankDisk, buildIso, cleanupVms, freePort, waitApi } from './vm';

const BOOT_FAIL = /Kernel panic|NEUROFLOW-INITRAMFS: error|error in step/;
const HOSTNAME = 'nf-installed';
const PASSWORD = 'answer-pass-42';

let iso = '';
beforeAll(() => {
  iso = buildIso();
});
afterAll(cleanupVms);

/** One step of a flow: its name leads any failure. */
async function step(name: string, fn: () => Promise<void>): Promise<void> {
  try {
    await fn();
  } catch (err) {
    (err as Error).message = `${name}: ${(err as Error).message}`;
    throw err;
  }
}

// The two flows are independent: they run at the same time (each VM has one vCPU; the machine has two).
describe('appliance ISO', () => {
  it.concurrent('live: BIOS and UEFI boots', async () => {
    await step(
      'boots (BIOS) to a system in RAM with a tmpfs data dir, then serves the API once a cluster is chosen',
      async () => {
        const port = await freePort();
        const vm = new ApplianceVm({ name: 'live', iso, apiPort: port }).start();
        await vm.waitSerial(/GNU GRUB/, 120_000);
        await vm.waitSerial(/NEUROFLOW-APPLIANCE: up in [^\r\n]*/, 300_000, { fail: BOOT_FAIL });
        const log = vm.serial(0);
        expect(log).toMatch(/NEUROFLOW-INITRAMFS: medium=\/dev\/sr0 label=NEUROFLOW/);
        expect(log).toMatch(/NEUROFLOW-INITRAMFS: medium unmounted/);
        expect(log).toMatch(/NEUROFLOW-APPLIANCE: data=tmpfs on \/var\/lib\/neuroflow/);
        expect(log).toMatch(/NEUROFLOW-APPLIANCE: medium \/dev\/sr0 \(NEUROFLOW\) released/);

        // No root password yet: the login on ttyS1 asks for none.
        await vm.login(undefined);
        const mounts = await vm.exec('cat /proc/mounts');
        expect(mounts).toMatch(/^\S+ \/var\/lib\/neuroflow tmpfs /m);
        expect(mounts).toMatch(/^nf-root \/ overlay /m);
        expect(mounts).not.toMatch(/iso9660|^\/dev\/sr0 /m);
        expect(await vm.exec('readlink /proc/1/exe')).toMatch(/busybox/);

        const ppm = readFileSync(await vm.screendump());
        expect(ppm.subarray(0, 2).toString()).toBe('P6');

        // cluster.mode none: serve waits for the console (its status comes once the supervisor has started:
        // under TCG three Bun processes start at once, the supervisor and the two consoles).
        const idle = JSON.parse(
          await vm.exec(
            'i=0; while [ ! -s /run/neuroflow/cluster-status.json ] && [ $i -lt 300 ]; do sleep 0.5; i=$((i+1)); done; cat /run/neuroflow/cluster-status.json',
            200_000,
          ),
        ) as { state: string };
        expect(idle.state).toBe('idle');

        // What the console does to create a cluster: write the config, SIGHUP the supervisor.
        await vm.exec(
          `sed -i 's/"mode": "none"/"mode": "create"/' /var/lib/neuroflow/appliance/config.json && kill -HUP $(cat /run/neuroflow/appliance-serve.pid)`,
        );
        await waitApi(port, 420_000, vm);
        // The supervisor sees the API answer on its next poll (every second, slower under TCG).
        const status = JSON.parse(
          await vm.exec(
            `i=0; until grep -q '"state":"running"' /run/neuroflow/cluster-status.json || [ $i -ge 240 ]; do sleep 0.5; i=$((i+1)); done; cat /run/neuroflow/cluster-status.json`,
            200_000,
          ),
        ) as {
          state: string;
          url: string;
        };
        expect(status.state).toBe('running');
        expect(status.url).toBe('https://10.0.2.15:8006');
        await vm.destroy();
      },
    );

    await step('boots the ISO with UEFI (OVMF) through GRUB to the system', async () => {
      const vm = new ApplianceVm({ name: 'live-uefi', iso, firmware: 'uefi' }).start();
      await vm.waitSerial(/GNU GRUB/, 240_000);
      await vm.waitSerial(/NEUROFLOW-INITRAMFS: switch_root/, 300_000, { fail: BOOT_FAIL });
      await vm.waitSerial(/NEUROFLOW-APPLIANCE: up in/, 300_000, { fail: BOOT_FAIL });
      await vm.destroy();
    });
  });

  it.concurrent('unattended install, then the installed disk', async () => {
    // A VM object only for its temp dir (the disk images live there and go with it).
    const work = new ApplianceVm({ name: 'install-files' });
    let disk = '';
    let token = '';
    const marker = `kept-${Date.now()}`;
    try {
      await step('installs from the answer file and powers off', async () => {
        disk = blankDisk(join(work.dir, 'disk.qcow2'), '10G');
        const answer = join(work.dir, 'answer.img');
        answerDisk(answer, {
          disk: '/dev/vda',
          wipe: true,
          after: 'poweroff',
          config: {
            hostname: HOSTNAME,
            network: { interface: 'eth0', mode: 'dhcp' },
            rootPassword: { plain: PASSWORD },
            cluster: { mode: 'create', name: 'lab' },
          },
        });
        const vm = new ApplianceVm({ name: 'installer', iso, disks: [disk, answer] }).start();
        await vm.waitSerial(/Install \(unattended answer file\)/, 120_000);
        // Hotkey i boots that entry (the entry then echoes "Unattended install: ..."); GRUB may not read keys
        // at once, so type it again until it did.
        for (let i = 0; i < 30 && !/Unattended install: answer file/.test(vm.serial(0)) && vm.alive; i++) {
          await vm.type('i');
          await Bun.sleep(2000);
        }
        await vm.waitSerial(/NEUROFLOW-INSTALL: done in [^\r\n]*/, 900_000, {
          fail: /NEUROFLOW-INSTALL: failed[^\r\n]*|Kernel panic/,
        });
        const log = vm.serial(0);
        expect(log).toMatch(
          /NEUROFLOW-APPLIANCE: data=tmpfs on \/var\/lib\/neuroflow \(live system: nothing survives a reboot; unattended install\)/,
        );
        expect(log).toMatch(
          /NEUROFLOW-INSTALL: answer file \/answer.json read from \/dev\/vdb \(NF-ANSWER\)/,
        );
        for (let n = 1; n <= 10; n++)
          expect(log).toMatch(new RegExp(`NEUROFLOW-INSTALL: step ${n}/10: .*: ok`));
        expect(await vm.waitExit(180_000)).toBe(0);
        await vm.destroy();
      });

      await step(
        'boots the installed disk without the ISO: host name, root password, NF-DATA, the API',
        async () => {
          const port = await freePort();
          const vm = new ApplianceVm({ name: 'disk-1', disks: [disk], apiPort: port }).start();
          await vm.waitSerial(/NEUROFLOW-APPLIANCE: up in [^\r\n]*/, 300_000, { fail: BOOT_FAIL });
          const log = vm.serial(0);
          expect(log).toMatch(/NEUROFLOW-INITRAMFS: medium=\/dev\/vda3 label=NF-BOOT/);
          expect(log).toMatch(/NEUROFLOW-APPLIANCE: data=NF-DATA \/dev\/vda4 on \/var\/lib\/neuroflow/);
          expect(log).toMatch(new RegExp(`NEUROFLOW-APPLIANCE: hostname=${HOSTNAME}`));
          expect(log).toMatch(/NEUROFLOW-APPLIANCE: root password: set from the config/);

          // The Linux root password is the answer file's (busybox login checks /etc/shadow).
          await vm.login(PASSWORD);
          expect((await vm.exec('hostname')).trim()).toBe(HOSTNAME);
          expect(await vm.exec("grep -c '^root:\\$6\\$' /etc/shadow")).toMatch(/^1/);
          expect(await vm.exec('cat /var/lib/neuroflow/appliance/config.json')).not.toContain(PASSWORD);
          await vm.exec(`echo ${marker} > /var/lib/neuroflow/test-marker && sync`);

          await waitApi(port, 420_000, vm);
          token = (await vm.exec('cat /var/lib/neuroflow/admin.token')).trim();
          const nodes = (await (await apiGet(port, '/api/v1/nodes', token)).json()) as { name: string }[];
          expect(nodes.map((n) => n.name)).toEqual([HOSTNAME]);
          // A clean power-off through the ACPI button (acpid -> init -> the shutdown script).
          expect(await vm.powerdown(180_000)).toBe(true);
          expect(vm.serial(0)).toMatch(/NEUROFLOW-APPLIANCE: stopped/);
          await vm.destroy();
        },
      );

      await step('keeps NF-DATA across a power cycle and carries on with the same cluster', async () => {
        const port = await freePort();
        const vm = new ApplianceVm({ name: 'disk-2', disks: [disk], apiPort: port }).start();
        await vm.waitSerial(/NEUROFLOW-APPLIANCE: up in [^\r\n]*/, 300_000, { fail: BOOT_FAIL });
        await vm.login(PASSWORD);
        expect((await vm.exec('cat /var/lib/neuroflow/test-marker')).trim()).toBe(marker);
        expect((await vm.exec('hostname')).trim()).toBe(HOSTNAME);
        await waitApi(port, 420_000, vm);
        const cluster = (await (await apiGet(port, '/api/v1/cluster', token)).json()) as { name?: string };
        expect(JSON.stringify(cluster)).toContain('lab');
        await vm.destroy();
      });

      await step('boots the installed disk with UEFI (GRUB at EFI/BOOT/BOOTX64.EFI)', async () => {
        const vm = new ApplianceVm({ name: 'disk-uefi', disks: [disk], firmware: 'uefi' }).start();
        await vm.waitSerial(/NEUROFLOW-INITRAMFS: medium=\/dev\/vda3 label=NF-BOOT/, 300_000, {
          fail: BOOT_FAIL,
        });
        await vm.waitSerial(/NEUROFLOW-APPLIANCE: up in/, 300_000, { fail: BOOT_FAIL });
        await vm.destroy();
      });
    } finally {
      await work.destroy();
    }
  });
});
