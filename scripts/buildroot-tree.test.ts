/**
 * Static consistency checks of the Buildroot external tree (buildroot/). No Buildroot build runs
 * here (its sources cannot be fetched on this machine): these check that the tree's pieces name
 * each other correctly, follow Buildroot's conventions, keep the appliance contract of
 * docs/appliance.md, and stay the same as the Debian ISO's files (iso/) they mirror.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const br = join(root, 'buildroot');
const board = join(br, 'board', 'neuroflow');
const overlay = join(board, 'rootfs-overlay');
const read = (p: string) => readFileSync(p, 'utf8');

function listFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? listFiles(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/** Kconfig `source "$BR2_EXTERNAL_NEUROFLOW_PATH/..."` lines of a Config.in, as paths in the tree. */
function sourcedFiles(configIn: string): string[] {
  return [...read(configIn).matchAll(/^\s*source\s+"\$BR2_EXTERNAL_NEUROFLOW_PATH\/([^"]+)"/gm)].map((m) =>
    join(br, m[1]!),
  );
}

/** The defconfig as a map; `# X is not set` lines map to 'n'. */
function defconfig(): Map<string, string> {
  const values = new Map<string, string>();
  for (const line of read(join(br, 'configs', 'neuroflow_defconfig')).split('\n')) {
    const set = /^(BR2_\w+)=(.*)$/.exec(line);
    if (set) values.set(set[1]!, set[2]!.replace(/^"(.*)"$/, '$1'));
    const unset = /^# (BR2_\w+) is not set$/.exec(line);
    if (unset) values.set(unset[1]!, 'n');
  }
  return values;
}

/** A defconfig path value ("$(BR2_EXTERNAL_NEUROFLOW_PATH)/x y") as paths in the tree. */
function externalPaths(value: string): string[] {
  return value
    .split(/\s+/)
    .filter(Boolean)
    .map((p) => {
      expect(p, `${p} should be under $(BR2_EXTERNAL_NEUROFLOW_PATH)`).toMatch(
        /^\$\(BR2_EXTERNAL_NEUROFLOW_PATH\)\//,
      );
      return join(br, p.replace('$(BR2_EXTERNAL_NEUROFLOW_PATH)/', ''));
    });
}

const packageDirs = readdirSync(join(br, 'package'), { withFileTypes: true })
  .filter((e) => e.isDirectory())
  .map((e) => e.name);

interface InittabEntry {
  id: string;
  action: string;
  process: string;
}
function inittab(path: string): InittabEntry[] {
  return read(path)
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('#'))
    .map((l) => {
      const [id, _runlevels, action, ...rest] = l.split(':');
      return { id: id!, action: action!, process: rest.join(':') };
    });
}

describe('buildroot external tree', () => {
  it('external.desc names the tree NEUROFLOW, with a description', () => {
    const desc = read(join(br, 'external.desc'));
    expect(desc).toMatch(/^name: NEUROFLOW$/m);
    expect(desc).toMatch(/^desc: \S.+$/m);
  });

  it('external.mk includes every package .mk of the tree', () => {
    expect(read(join(br, 'external.mk'))).toContain(
      'include $(sort $(wildcard $(BR2_EXTERNAL_NEUROFLOW_PATH)/package/*/*.mk))',
    );
  });

  it('Config.in sources every package, and each has a Config.in and a <name>.mk', () => {
    const sourced = sourcedFiles(join(br, 'Config.in'));
    expect(sourced.length).toBeGreaterThan(0);
    for (const f of sourced) {
      expect(existsSync(f), `${relative(root, f)} (sourced by buildroot/Config.in)`).toBe(true);
      const dir = join(f, '..');
      const name = dir.split('/').pop()!;
      expect(existsSync(join(dir, `${name}.mk`)), `buildroot/package/${name}/${name}.mk`).toBe(true);
    }
    // ...and no package directory is left out of the menu.
    expect(sourced.map((f) => f.split('/').at(-2)).sort()).toEqual([...packageDirs].sort());
  });

  it.each(packageDirs)('package %s: Config.in option and .mk variables follow Buildroot naming', (name) => {
    const upper = name.toUpperCase().replace(/-/g, '_');
    const configIn = read(join(br, 'package', name, 'Config.in'));
    expect(configIn).toMatch(new RegExp(`^config BR2_PACKAGE_${upper}$`, 'm'));
    const mk = read(join(br, 'package', name, `${name}.mk`));
    // The banner Buildroot's check-package expects.
    expect(mk.split('\n').slice(0, 5).join('\n')).toBe(
      `${'#'.repeat(80)}\n#\n# ${name}\n#\n${'#'.repeat(80)}`,
    );
    for (const v of ['VERSION', 'SITE', 'LICENSE']) {
      expect(mk, `${name}.mk sets ${upper}_${v}`).toMatch(new RegExp(`^${upper}_${v} = \\S`, 'm'));
    }
    // Every variable the .mk assigns is the package's own (<PKG>_...).
    for (const m of mk.matchAll(/^([A-Z0-9_]+)\s*(?:\+|\?|:)?=/gm)) {
      expect(m[1]!.startsWith(`${upper}_`), `${name}.mk assigns ${m[1]}`).toBe(true);
    }
    for (const m of mk.matchAll(/^define ([A-Z0-9_]+)$/gm)) {
      expect(m[1]!.startsWith(`${upper}_`), `${name}.mk defines ${m[1]}`).toBe(true);
    }
    // One package infrastructure, evaluated last.
    const evals = [...mk.matchAll(/^\$\(eval \$\(([a-z-]+)\)\)$/gm)].map((m) => m[1]);
    expect(evals).toHaveLength(1);
    expect(['generic-package', 'autotools-package', 'cmake-package', 'golang-package']).toContain(evals[0]);
    expect(mk.trimEnd().endsWith(`$(eval $(${evals[0]}))`)).toBe(true);
    // pkg-golang refuses <PKG>_INSTALL_BINS since Buildroot 2024.
    if (evals[0] === 'golang-package') expect(mk).not.toMatch(new RegExp(`^${upper}_INSTALL_BINS`, 'm'));
  });

  it('a .hash file, where there is one, lists the package source', () => {
    for (const name of packageDirs) {
      const hash = join(br, 'package', name, `${name}.hash`);
      if (!existsSync(hash)) continue;
      expect(read(hash)).toMatch(/^sha256 [0-9a-f]{64} \S+$/m);
    }
  });

  it('ceph-client is a clearly marked, unselectable stub', () => {
    const configIn = read(join(br, 'package', 'ceph-client', 'Config.in'));
    expect(configIn).toMatch(/depends on BR2_BROKEN/);
    expect(configIn).toMatch(/NOT BUILDABLE/);
    expect(read(join(br, 'package', 'ceph-client', 'ceph-client.mk'))).toMatch(/NOT BUILDABLE YET/);
    expect(defconfig().get('BR2_PACKAGE_CEPH_CLIENT')).toBeUndefined();
  });
});

describe('neuroflow_defconfig', () => {
  const cfg = defconfig();

  it('is x86_64 with a Buildroot musl toolchain with C++ (libstdc++ for the Bun runtime)', () => {
    expect(cfg.get('BR2_x86_64')).toBe('y');
    expect(cfg.get('BR2_TOOLCHAIN_BUILDROOT_MUSL')).toBe('y');
    expect(cfg.get('BR2_TOOLCHAIN_BUILDROOT_CXX')).toBe('y');
    expect(cfg.get('BR2_INIT_BUSYBOX')).toBe('y');
  });

  it('enables every package of the external tree except the ceph-client stub', () => {
    for (const name of packageDirs.filter((n) => n !== 'ceph-client')) {
      expect(cfg.get(`BR2_PACKAGE_${name.toUpperCase().replace(/-/g, '_')}`), name).toBe('y');
    }
  });

  it('names only files that exist in the tree', () => {
    for (const key of [
      'BR2_ROOTFS_OVERLAY',
      'BR2_ROOTFS_POST_BUILD_SCRIPT',
      'BR2_ROOTFS_POST_IMAGE_SCRIPT',
      'BR2_LINUX_KERNEL_CONFIG_FRAGMENT_FILES',
      'BR2_PACKAGE_BUSYBOX_CONFIG_FRAGMENT_FILES',
    ]) {
      const value = cfg.get(key);
      expect(value, key).toBeTruthy();
      for (const p of externalPaths(value!)) expect(existsSync(p), `${key}: ${relative(root, p)}`).toBe(true);
    }
    for (const key of ['BR2_ROOTFS_POST_BUILD_SCRIPT', 'BR2_ROOTFS_POST_IMAGE_SCRIPT']) {
      for (const p of externalPaths(cfg.get(key)!)) {
        expect(statSync(p).mode & 0o111, `${relative(root, p)} is executable`).not.toBe(0);
      }
    }
  });

  it('builds the kernel (LTS, x86_64 defconfig + fragment), busybox with a fragment, the images', () => {
    expect(cfg.get('BR2_LINUX_KERNEL')).toBe('y');
    expect(cfg.get('BR2_LINUX_KERNEL_USE_ARCH_DEFAULT_CONFIG')).toBe('y');
    expect(cfg.get('BR2_LINUX_KERNEL_CUSTOM_VERSION_VALUE')).toMatch(/^6\.(1|6|12)\.\d+$/);
    expect(cfg.get('BR2_LINUX_KERNEL_BZIMAGE')).toBe('y');
    for (const key of [
      'BR2_PACKAGE_QEMU_SYSTEM',
      'BR2_PACKAGE_QEMU_TARGET_X86_64',
      'BR2_PACKAGE_QEMU_TOOLS',
      'BR2_PACKAGE_LIBVNCSERVER', // Buildroot's qemu.mk builds VNC only with it; the UI's console is VNC
      'BR2_PACKAGE_QEMU_SLIRP', // NAT networks
      'BR2_PACKAGE_E2FSPROGS',
      'BR2_PACKAGE_DOSFSTOOLS_MKFS_FAT',
      'BR2_PACKAGE_UTIL_LINUX_BINARIES', // sfdisk, blkid, lsblk, wipefs
      'BR2_PACKAGE_SQUASHFS',
      'BR2_TARGET_GRUB2_I386_PC',
      'BR2_TARGET_GRUB2_X86_64_EFI',
      'BR2_TARGET_GRUB2_INSTALL_TOOLS', // grub-install and both module sets for the installer
      'BR2_TARGET_ROOTFS_SQUASHFS',
      'BR2_TARGET_ROOTFS_SQUASHFS4_ZSTD', // as the ISO: zstd, mksquashfs' default level 15
      'BR2_PACKAGE_HOST_XORRISO',
      'BR2_PACKAGE_HOST_MTOOLS',
      'BR2_PACKAGE_HOST_DOSFSTOOLS',
    ]) {
      expect(cfg.get(key), key).toBe('y');
    }
  });

  it('keeps Buildroot from stripping the Bun executable (strip turns it into a bare bun)', () => {
    expect((cfg.get('BR2_STRIP_EXCLUDE_FILES') ?? '').split(/\s+/)).toContain('neuroflow');
  });

  it('runs no getty and no ifupdown of its own: the inittab and `neuroflow appliance boot` do that', () => {
    expect(cfg.get('BR2_TARGET_GENERIC_GETTY')).toBe('n');
    expect(cfg.get('BR2_PACKAGE_IFUPDOWN_SCRIPTS')).toBe('n');
  });
});

describe('fragments', () => {
  it('linux.fragment enables what the appliance needs, built in', () => {
    const options = new Map(
      [...read(join(board, 'linux.fragment')).matchAll(/^(CONFIG_\w+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]),
    );
    for (const opt of [
      'KVM',
      'KVM_INTEL',
      'KVM_AMD',
      'VIRTIO_PCI',
      'VIRTIO_BLK',
      'VIRTIO_NET',
      'VHOST_NET',
      'VHOST_VSOCK',
      'TUN',
      'BRIDGE',
      'VLAN_8021Q',
      'OPENVSWITCH',
      'OPENVSWITCH_GENEVE',
      'OVERLAY_FS',
      'SQUASHFS',
      'SQUASHFS_ZSTD',
      'ISO9660_FS',
      'VFAT_FS',
      'EXT4_FS',
      'BLK_DEV_LOOP',
      'EFIVAR_FS',
      'FW_CFG_SYSFS',
      'DEVTMPFS',
      'BLK_DEV_INITRD',
      'I6300ESB_WDT',
    ]) {
      expect(options.get(`CONFIG_${opt}`), `CONFIG_${opt}`).toBe('y');
    }
    // The Buildroot kernel loads no modules from the initramfs: nothing on the boot path is =m.
    expect([...options.values()].filter((v) => v === 'm')).toEqual([]);
  });

  it('busybox.fragment enables what init, the initramfs and the appliance scripts use', () => {
    const text = read(join(board, 'busybox.fragment'));
    for (const opt of [
      'INIT',
      'FEATURE_USE_INITTAB',
      'SWITCH_ROOT',
      'FINDFS',
      'FEATURE_MOUNT_LOOP',
      'MKPASSWD',
      'USE_BB_CRYPT_SHA',
      'UDHCPC',
      'IP',
      'GETTY',
      'CTTYHACK',
      'SETSID',
      'USLEEP',
      'SHA256SUM',
      'ACPID',
    ]) {
      expect(text, `CONFIG_${opt}=y`).toMatch(new RegExp(`^CONFIG_${opt}=y$`, 'm'));
    }
    // udhcpc's default lease script is the one the overlay ships.
    const script = /^CONFIG_UDHCPC_DEFAULT_SCRIPT="(.+)"$/m.exec(text)?.[1];
    expect(script).toBeTruthy();
    expect(existsSync(join(overlay, script!))).toBe(true);
  });
});

describe('boot chain and inittab (docs/appliance.md)', () => {
  const entries = inittab(join(overlay, 'etc', 'inittab'));
  const docs = read(join(root, 'docs', 'appliance.md'));

  it('the contract still names these commands', () => {
    for (const cmd of ['neuroflow appliance boot', 'neuroflow appliance serve', 'neuroflow console']) {
      expect(docs).toContain(cmd);
    }
    expect(docs).toMatch(/tty1 and ttyS0/);
  });

  it('runs `neuroflow appliance boot` once, to its end, before the respawned entries start', () => {
    const boot = entries.filter((e) => /\bneuroflow appliance boot$/.test(e.process));
    expect(boot).toHaveLength(1);
    // busybox init runs sysinit, then wait entries, each to its end, before once/respawn ones.
    expect(['sysinit', 'wait']).toContain(boot[0]!.action);
  });

  it('respawns `neuroflow appliance serve`', () => {
    const serve = entries.filter((e) => /\bneuroflow appliance serve$/.test(e.process));
    // On /dev/null: with no terminal named, busybox init would reset ttyS0's modes (the serial console
    // TUI's) at every respawn.
    expect(serve).toEqual([{ id: 'null', action: 'respawn', process: serve[0]!.process }]);
  });

  it('names a terminal for every respawned entry (the default, /dev/console, is the serial TUI)', () => {
    const unnamed = entries.filter((e) => e.action === 'respawn' && e.id === '');
    expect(unnamed).toEqual([]);
  });

  it.each(['tty1', 'ttyS0'])('respawns `neuroflow console` with TERM=linux on %s', (tty) => {
    const console = entries.filter((e) => e.id === tty && e.action === 'respawn');
    expect(console).toHaveLength(1);
    let command = console[0]!.process;
    // A wrapper script of the overlay: follow it to the command it runs.
    if (!command.includes('neuroflow console')) {
      const wrapper = join(overlay, command.split(' ')[0]!);
      expect(existsSync(wrapper), `${command} is in the overlay`).toBe(true);
      command = read(wrapper)
        .split('\n')
        .filter((l) => !l.trimStart().startsWith('#'))
        .find((l) => l.includes('neuroflow console'))!;
    }
    expect(command).toMatch(/TERM=linux\s+\S*neuroflow console\b/);
  });

  it('GRUB and the initramfs use the same medium label and kernel options as the ISO', () => {
    const grub = read(join(board, 'grub.cfg'));
    expect(grub).toMatch(/serial --unit=0 --speed=115200/);
    expect(grub).toMatch(/terminal_output serial console/);
    expect(grub).toMatch(/linux \/boot\/vmlinuz nf\.boot=iso @CMDLINE@/);
    const init = read(join(board, 'initramfs', 'init'));
    expect(init).toContain('NEUROFLOW');
    expect(init).toContain('NF-BOOT');
    expect(init).toContain('exec switch_root /newroot /sbin/init');
    const lib = read(join(board, 'lib.sh'));
    const cmdline = /^NF_CMDLINE="(.+)"$/m.exec(lib)?.[1];
    expect(cmdline).toMatch(/console=ttyS0,115200n8/);
    const isoBuild = join(root, 'iso', 'build.sh');
    if (existsSync(isoBuild)) expect(read(isoBuild)).toContain(`CMDLINE="${cmdline}"`);
    const postImage = read(join(board, 'post-image.sh'));
    expect(postImage).toContain('-volid NEUROFLOW');
    expect(postImage).toContain('"$iso/rootfs.squashfs"');
  });
});

describe('consistency with the Debian ISO (iso/)', () => {
  const iso = join(root, 'iso');
  // board file -> the ISO file it mirrors, byte for byte.
  const pairs: [string, string][] = [
    ['grub.cfg', 'grub/grub.cfg'],
    ['initramfs/init', 'initramfs/init'],
    ['initramfs/modules', 'initramfs/modules'],
  ];
  if (existsSync(join(iso, 'rootfs'))) {
    for (const f of listFiles(join(iso, 'rootfs'))) {
      const rel = relative(join(iso, 'rootfs'), f);
      pairs.push([join('rootfs-overlay', rel), join('rootfs', rel)]);
    }
  }

  it.each(pairs)('board/neuroflow/%s is the same as iso/%s', (ours, theirs) => {
    const isoFile = join(iso, theirs);
    const boardFile = join(board, ours);
    expect(existsSync(isoFile), `iso/${theirs}`).toBe(true);
    expect(
      existsSync(boardFile),
      `buildroot/board/neuroflow/${ours} is missing: run buildroot/sync-from-iso.sh`,
    ).toBe(true);
    expect(
      read(boardFile),
      `buildroot/board/neuroflow/${ours} differs from iso/${theirs}: run buildroot/sync-from-iso.sh`,
    ).toBe(read(isoFile));
    expect(statSync(boardFile).mode & 0o100, 'the executable bit').toBe(statSync(isoFile).mode & 0o100);
  });

  it('the overlay has nothing the ISO does not, besides etc/hostname', () => {
    const extra = listFiles(overlay)
      .map((f) => relative(overlay, f))
      .filter((rel) => !existsSync(join(iso, 'rootfs', rel)));
    expect(extra).toEqual(['etc/hostname']);
    expect(read(join(overlay, 'etc', 'hostname')).trim()).toBe('neuroflow');
  });

  it('the neuroflow package installs the binaries where the ISO has them', () => {
    const mk = read(join(br, 'package', 'neuroflow', 'neuroflow.mk'));
    expect(mk).toContain('$(TARGET_DIR)/usr/bin/neuroflow');
    expect(mk).toContain('$(TARGET_DIR)/usr/lib/neuroflow/neuroflow-agent');
    const isoBuild = join(iso, 'build.sh');
    if (existsSync(isoBuild)) {
      const text = read(isoBuild);
      expect(text).toContain('"$root/usr/bin/neuroflow"');
      expect(text).toContain('"$root/usr/lib/neuroflow/neuroflow-agent"');
    }
  });
});

describe('shell scripts', () => {
  const scripts = listFiles(br).filter((f) => {
    if (f.endsWith('.sh')) return true;
    const head = readFileSync(f).subarray(0, 64).toString('latin1');
    return /^#!\s*\/(usr\/)?bin\/(env )?(ba)?sh\b/.test(head) || head.startsWith('# shellcheck shell=');
  });

  it('finds the board scripts', () => {
    const names = scripts.map((f) => relative(br, f));
    for (const n of [
      'board/neuroflow/post-build.sh',
      'board/neuroflow/post-image.sh',
      'board/neuroflow/lib.sh',
    ]) {
      expect(names).toContain(n);
    }
  });

  it.each(scripts.map((f) => [relative(root, f)]))('%s passes bash -n', (file) => {
    const r = spawnSync('bash', ['-n', join(root, file)], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
  });
});
