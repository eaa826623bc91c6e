#!/usr/bin/env bash
# Buildroot post-build script (BR2_ROOTFS_POST_BUILD_SCRIPT): runs once the packages are installed
# and the overlay (rootfs-overlay/, a copy of iso/rootfs/) is copied into the target directory, and
# before Buildroot makes rootfs.squashfs of it.
#
# Usage (by Buildroot): post-build.sh TARGET_DIR
#   Environment from Buildroot: BR2_CONFIG, HOST_DIR, BUILD_DIR, BINARIES_DIR.
#
# Gives the root file system what iso/build.sh adds to the Debian one besides iso/rootfs/: the
# directories and links, /etc/os-release, /etc/issue, /etc/hosts, /etc/neuroflow/build.json and
# modules.order, the /boot/vmlinuz-RELEASE link for the KVM probe of `neuroflow serve`, mkfs.* names,
# OVMF for UEFI guests; then checks what the appliance cannot do without.
set -euo pipefail

NF_SCRIPT=post-build
BOARD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$BOARD_DIR/lib.sh"
REPO_DIR=$(cd "$BOARD_DIR/../../.." && pwd)
TARGET=${1:?usage: post-build.sh TARGET_DIR}
[[ -d "$TARGET" ]] || die "$TARGET is not a directory"

# The inittab must be the appliance's (the overlay comes after Buildroot's own inittab).
grep -qx '::sysinit:/usr/bin/neuroflow appliance boot' "$TARGET/etc/inittab" ||
	die "$TARGET/etc/inittab is not the appliance's (is BR2_ROOTFS_OVERLAY set to board/neuroflow/rootfs-overlay?)"

version=$(sed -n 's/^[[:space:]]*"version":[[:space:]]*"\([^"]*\)".*/\1/p' "$REPO_DIR/package.json" 2>/dev/null | head -n1)
version=${version:-unknown}
krel=$(nf_kernel_release "$TARGET")
hash=$(cat "${BR2_CONFIG:-/dev/null}" "$TARGET/usr/bin/neuroflow" 2>/dev/null | sha256sum | cut -c1-16)

# Directories and links, as in iso/build.sh.
mkdir -p "$TARGET"/var/{lib/neuroflow,log/neuroflow,tmp} "$TARGET"/etc/{neuroflow,openvswitch,ovn} \
	"$TARGET"/boot "$TARGET"/home "$TARGET"/usr/lib/neuroflow
chmod 700 "$TARGET/var/lib/neuroflow"
chmod 1777 "$TARGET/var/tmp"
for l in "var/run:/run" "var/lock:/run/lock" "etc/mtab:/proc/self/mounts"; do
	rm -rf "${TARGET:?}/${l%%:*}"
	ln -s "${l#*:}" "$TARGET/${l%%:*}"
done
# Buildroot's skeleton links resolv.conf into /tmp, which nothing mounts here: a plain file, as the ISO.
rm -f "$TARGET/etc/resolv.conf"
: >"$TARGET/etc/resolv.conf"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$TARGET/etc/hosts"
cat >"$TARGET/etc/os-release" <<EOF
PRETTY_NAME="NeuroFlow $version"
NAME="NeuroFlow"
ID=neuroflow
VERSION_ID="$version"
BUILD_ID="$hash"
VARIANT_ID=buildroot-musl
EOF
printf 'NeuroFlow %s (\\l)\n\n' "$version" >"$TARGET/etc/issue"
printf '{"version":"%s","hash":"%s","kernel":"%s","libc":"musl","builder":"buildroot"}\n' \
	"$version" "$hash" "${krel:-unknown}" >"$TARGET/etc/neuroflow/build.json"

# Root stays locked until `neuroflow appliance boot` sets the configured password.
sed -i 's/^root:[^:]*:/root:*:/' "$TARGET/etc/shadow"
chmod 600 "$TARGET/etc/shadow"
chmod 644 "$TARGET"/etc/{passwd,group,profile,shells,inittab,hostname}

# Modules for `neuroflow appliance boot` to load: the ISO's host list, those this kernel has as
# modules (the fragment builds the appliance's drivers in, so this is usually empty).
: >"$TARGET/etc/neuroflow/modules.order"
if [[ -n "$krel" && -f "$TARGET/lib/modules/$krel/modules.dep" ]]; then
	nf_modules_closure "$TARGET/lib/modules/$krel" "$BOARD_DIR/initramfs/modules" \
		"$TARGET/etc/neuroflow/modules" | sed 's/\.ko.*$/.ko/' >"$TARGET/etc/neuroflow/modules.order"
fi
# `neuroflow serve` probes KVM by booting /boot/vmlinuz-*: the kernel copy the initramfs keeps in RAM.
if [[ -n "$krel" ]]; then ln -sfn /run/neuroflow/live/medium/vmlinuz "$TARGET/boot/vmlinuz-$krel"; fi

# mkfs.vfat, fsck.vfat, mkfs.ext4... under their usual names (the installer calls these).
link_beside() { # link_beside TARGET_NAME LINK_NAME...: next to the real program, not a busybox applet
	local src=$1 d n
	shift
	for d in usr/sbin sbin usr/bin bin; do
		if [[ -e "$TARGET/$d/$src" && "$(readlink "$TARGET/$d/$src")" != *busybox ]]; then
			for n in "$@"; do [[ -e "$TARGET/$d/$n" ]] || ln -s "$src" "$TARGET/$d/$n"; done
			return 0
		fi
	done
}
link_beside mkfs.fat mkfs.vfat
link_beside fsck.fat fsck.vfat
link_beside mke2fs mkfs.ext2 mkfs.ext3 mkfs.ext4
link_beside e2fsck fsck.ext2 fsck.ext3 fsck.ext4

# Dropbear runs only while the console enables SSH, under `neuroflow appliance serve` (host keys in the
# data dir): not at boot through the package's init script.
rm -f "$TARGET/etc/init.d/S50dropbear"

# UEFI firmware for guests (edk2 installs it into the images directory, not the target).
if [[ -f "${BINARIES_DIR:-/nonexistent}/OVMF.fd" ]]; then
	install -D -m 644 "$BINARIES_DIR/OVMF.fd" "$TARGET/usr/share/ovmf/OVMF.fd"
fi

# What the appliance cannot run without, and what it loses a feature without.
find_cmd() {
	local d
	for d in usr/bin usr/sbin bin sbin; do [[ -e "$TARGET/$d/$1" || -L "$TARGET/$d/$1" ]] && return 0; done
	return 1
}
missing=()
for c in neuroflow busybox qemu-system-x86_64 qemu-img etcd sfdisk wipefs blkid mkfs.ext4 mkfs.vfat \
	grub-install ip udhcpc switch_root mkpasswd; do
	find_cmd "$c" || missing+=("$c")
done
((${#missing[@]} == 0)) || die "missing in the image: ${missing[*]}"
for c in ovs-vswitchd ovsdb-server ovs-vsctl ovn-controller ovn-northd lsblk resize2fs dropbear dropbearkey; do
	find_cmd "$c" || log "note: $c is not in the image"
done
[[ -e "$TARGET/lib/libstdc++.so.6" || -e "$TARGET/usr/lib/libstdc++.so.6" ]] ||
	die "libstdc++.so.6 is not in the image: Bun's runtime needs it (BR2_TOOLCHAIN_BUILDROOT_CXX=y)"
# A stripped Bun executable is a bare `bun`: the application lives in its .bun section.
"$(nf_readelf)" -S --wide "$TARGET/usr/bin/neuroflow" | grep -q ' \.bun ' ||
	die "/usr/bin/neuroflow has no .bun section (stripped? keep it in BR2_STRIP_EXCLUDE_FILES)"

log "NeuroFlow $version, kernel ${krel:-unknown}, $(wc -l <"$TARGET/etc/neuroflow/modules.order") modules to load"
