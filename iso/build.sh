#!/usr/bin/env bash
# Builds the NeuroFlow appliance ISO (dist/neuroflow.iso) from the Debian packages installed on this
# machine and the built binaries (dist/neuroflow, dist/neuroflow-agent). See iso/README.md.
#
# Usage: iso/build.sh [--force] [--out FILE]      (npm run build:iso)
#   The last line of stdout is the path of the ISO; all logging goes to stderr.
#
# Output (cached): ${NEUROFLOW_CACHE_DIR:-$HOME/.cache/neuroflow}/iso/<hash>/
#   neuroflow.iso    hybrid ISO (BIOS El Torito + UEFI, also dd-able to a USB stick), volume NEUROFLOW:
#                    /boot/vmlinuz, /boot/initrd.img, /rootfs.squashfs, /rootfs.sha256, /build.json,
#                    /boot/grub (grub-mkrescue: i386-pc and x86_64-efi)
#   vmlinuz          the Debian kernel
#   initrd.img       gzip'd cpio: busybox + the modules to find the medium (iso/initramfs/)
#   rootfs.squashfs  zstd squashfs: busybox userland, QEMU + qemu-img (libraries, firmware, the rbd
#                    block driver with librbd/librados), etcd, Open vSwitch/OVN, GRUB and mkfs tools for
#                    the installer, Dropbear (SSH while the console enables it), host kernel modules,
#                    neuroflow + neuroflow-agent, iso/rootfs/ files
#   build.json       version, hash, kernel, sizes, sha256 of each file
# and a copy of the ISO at dist/neuroflow.iso (or --out FILE).
# <hash> covers this script, every file under iso/, and the sha256 of every host file that goes into
# the image (binaries, libraries, modules, firmware), plus the versions of grub, xorriso and
# squashfs-tools. A complete directory is reused as is; builds run in a temp dir under a lock and are
# renamed into place, so concurrent runs are safe (the second one waits and reuses the first's result).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
REPO_DIR=$(dirname "$SCRIPT_DIR")
NEUROFLOW_BINARY="${NEUROFLOW_BINARY:-$REPO_DIR/dist/neuroflow}"
AGENT_BINARY="${NEUROFLOW_AGENT_BINARY:-$REPO_DIR/dist/neuroflow-agent}"
BUSYBOX=/bin/busybox
# Kernel command line of every appliance boot (ISO and installed disk): the screen and the first serial
# port (the last console= is /dev/console); crypto self-tests off (~0.5 s under TCG).
CMDLINE="console=tty0 console=ttyS0,115200n8 quiet panic=30 cryptomgr.notests"
SQUASHFS_COMP=(-comp zstd -Xcompression-level 15)

exec 3>&1 1>&2
log() { printf 'build-iso: %s\n' "$*" >&2; }
die() {
	printf 'build-iso: error: %s\n' "$*" >&2
	exit 1
}

force=0
out_iso="$REPO_DIR/dist/neuroflow.iso"
while (($# > 0)); do
	case "$1" in
	--force) force=1 ;;
	--out)
		out_iso=${2:?--out needs a file}
		shift
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$SCRIPT_PATH" | sed '$d; s/^# \{0,1\}//' >&2
		exit 0
		;;
	*) die "unknown argument: $1 (see --help)" ;;
	esac
	shift
done

need_cmd() { # need_cmd COMMAND DEBIAN-PACKAGE
	command -v "$1" >/dev/null 2>&1 ||
		die "'$1' not found; install the Debian package '$2' (apt-get install $2, or scripts/setup.sh)"
}
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }

for c in "mksquashfs squashfs-tools" "grub-mkrescue grub-common" "xorriso xorriso" "mformat mtools" \
	"cpio cpio" "gzip gzip" "ldd libc-bin" "depmod kmod" "flock util-linux" "sfdisk fdisk" \
	"mkfs.vfat dosfstools" "mkfs.ext4 e2fsprogs" "grub-install grub2-common" \
	"qemu-system-x86_64 qemu-system-x86" "qemu-img qemu-utils" "etcd etcd-server" "etcdctl etcd-client" \
	"ovs-vsctl openvswitch-switch" "ovn-controller ovn-host" "ovn-northd ovn-central" \
	"dropbear dropbear-bin" "dropbearkey dropbear-bin" "passt passt" "nft nftables"; do
	need_cmd ${c% *} ${c#* }
done
[[ -d /usr/lib/grub/i386-pc ]] || die "GRUB for BIOS is missing: apt-get install grub-pc-bin"
[[ -d /usr/lib/grub/x86_64-efi ]] || die "GRUB for UEFI is missing: apt-get install grub-efi-amd64-bin"
[[ -x "$BUSYBOX" ]] && "$BUSYBOX" --list | grep -qx switch_root ||
	die "static busybox not found; apt-get install busybox-static"
[[ -x "$NEUROFLOW_BINARY" ]] || die "$NEUROFLOW_BINARY not found: build it with 'npm run build'"
[[ -x "$AGENT_BINARY" ]] || die "$AGENT_BINARY not found: build it with 'npm run build:agent'"
version=$("$NEUROFLOW_BINARY" version 2>/dev/null || echo unknown)

# Newest kernel in /boot with its modules.
kver=
while IFS= read -r img; do
	v=${img#/boot/vmlinuz-}
	if [[ -f "/lib/modules/$v/modules.dep" ]]; then kver=$v; fi
done < <(find /boot -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | sort -V)
[[ -n "$kver" ]] || die "no /boot/vmlinuz-* with modules in /lib/modules; apt-get install linux-image-amd64"
moddir=/lib/modules/$kver

# --- what goes into the root file system --------------------------------------------------------------
# Programs (their shared libraries follow through ldd). Missing optional ones are skipped.
PROGRAMS=(
	/usr/bin/qemu-system-x86_64 /usr/bin/qemu-img
	/usr/bin/etcd /usr/bin/etcdctl
	/usr/sbin/ovs-vswitchd /usr/sbin/ovsdb-server /usr/bin/ovs-vsctl /usr/bin/ovs-ofctl
	/usr/bin/ovs-appctl /usr/bin/ovs-dpctl /usr/bin/ovsdb-tool /usr/bin/ovsdb-client
	/usr/bin/ovn-controller /usr/bin/ovn-northd /usr/bin/ovn-nbctl /usr/bin/ovn-sbctl /usr/bin/ovn-appctl
	/usr/sbin/grub-install /usr/sbin/grub-probe /usr/bin/grub-mkimage /usr/bin/grub-editenv
	/usr/lib/grub/i386-pc/grub-bios-setup
	/usr/sbin/sfdisk /usr/sbin/wipefs /usr/sbin/blkid /usr/bin/lsblk /usr/sbin/blockdev
	/usr/sbin/mke2fs /usr/sbin/e2fsck /usr/sbin/resize2fs /usr/sbin/tune2fs /usr/sbin/mkfs.fat /usr/sbin/fsck.fat
	/usr/sbin/ip /usr/sbin/bridge
	/usr/sbin/dropbear /usr/bin/dropbearkey
	/usr/bin/passt /usr/bin/passt.avx2 /usr/sbin/nft
)
# QEMU's loadable modules: TCG itself (a module in Debian), the rbd (Ceph) block driver, virtio-gpu.
QEMU_MODULES=(accel-tcg-x86_64.so accel-tcg-i386.so block-rbd.so hw-display-virtio-gpu.so
	hw-display-virtio-gpu-pci.so hw-display-virtio-vga.so)
# Data directories copied whole (firmware, schemas, GRUB platforms).
DATA_DIRS=(/usr/share/qemu /usr/share/seabios /usr/lib/ipxe/qemu /usr/share/openvswitch /usr/share/ovn
	/usr/lib/grub/i386-pc /usr/lib/grub/x86_64-efi /usr/share/grub)
OPTIONAL_FILES=(/usr/share/ovmf/OVMF.fd /etc/protocols /etc/services /etc/ethertypes /etc/mke2fs.conf)

resolve_programs() {
	local p
	for p in "${PROGRAMS[@]}"; do
		if [[ -e "$p" ]]; then echo "$p"; else log "note: $p is not installed; skipped"; fi
	done
	for p in "${QEMU_MODULES[@]}"; do
		p=/usr/lib/x86_64-linux-gnu/qemu/$p
		if [[ -e "$p" ]]; then echo "$p"; else log "note: $p is not installed; skipped"; fi
	done
}
mapfile -t programs < <(resolve_programs)
libs_of() { ldd "$1" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'; }
mapfile -t libs < <(for p in "${programs[@]}" "$NEUROFLOW_BINARY"; do libs_of "$p"; done | sort -u)

# Kernel modules: the lists plus their dependencies (modules.dep), in dependency order.
declare -A mod_path=() mod_deps=()
modname() {
	local n=${1##*/}
	n=${n%%.ko*}
	echo "${n//-/_}"
}
while IFS= read -r line; do
	p=${line%%:*}
	n=$(modname "$p")
	mod_path[$n]=$p
	mod_deps[$n]=${line#*:}
done <"$moddir/modules.dep"
modules_closure() { # modules_closure LISTFILE... -> module paths (relative to $moddir), dependency order
	local -A seen=()
	local -a order=()
	visit() {
		local n=$1 d
		[[ -n "${seen[$n]:-}" ]] && return 0
		seen[$n]=1
		if [[ -z "${mod_path[$n]:-}" ]]; then
			if ! grep -Eq "/${n//_/[-_]}\.ko" "$moddir/modules.builtin" 2>/dev/null; then
				log "note: kernel module $n is not in $kver; skipped"
			fi
			return 0
		fi
		for d in ${mod_deps[$n]}; do visit "$(modname "$d")"; done
		order+=("${mod_path[$n]}")
	}
	local m
	while IFS= read -r m; do
		m=${m%%#*}
		m=${m//[[:space:]]/}
		if [[ -n "$m" ]]; then visit "${m//-/_}"; fi
	done < <(cat "$@")
	printf '%s\n' "${order[@]}"
}
mapfile -t initrd_mods < <(modules_closure "$SCRIPT_DIR/initramfs/modules")
# Loaded at every boot (modules.order): the initramfs ones and rootfs/etc/neuroflow/modules; copied as
# well: the hardware drivers of modules.hw (loaded for the devices present).
mapfile -t host_mods < <(modules_closure "$SCRIPT_DIR/initramfs/modules" "$SCRIPT_DIR/rootfs/etc/neuroflow/modules")
mapfile -t hw_mods < <(modules_closure "$SCRIPT_DIR/rootfs/etc/neuroflow/modules.hw")

# --- cache key --------------------------------------------------------------------------------------
hash=$(
	{
		echo "neuroflow-iso v1 $version"
		echo "script $(sha256 "$SCRIPT_PATH")"
		(cd "$SCRIPT_DIR" && find . -type f ! -name README.md -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
		(cd "$SCRIPT_DIR" && find . -print0 | LC_ALL=C sort -z | xargs -0 stat -c '%n %a')
		echo "kernel $kver $(sha256 "/boot/vmlinuz-$kver")"
		for m in "${host_mods[@]}" "${hw_mods[@]}"; do echo "module $m $(sha256 "$moddir/$m")"; done
		echo "busybox $(sha256 "$BUSYBOX")"
		echo "neuroflow $(sha256 "$NEUROFLOW_BINARY")"
		echo "agent $(sha256 "$AGENT_BINARY")"
		for f in "${programs[@]}" "${libs[@]}"; do echo "file $f $(sha256 "$f")"; done
		for d in "${DATA_DIRS[@]}"; do
			[[ -d "$d" ]] && (cd "$d" && find -L . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum | sed "s|^|$d |")
		done
		for f in "${OPTIONAL_FILES[@]}"; do [[ -e "$f" ]] && echo "file $f $(sha256 "$f")"; done
		echo "tools grub $(pkg_version grub-common) xorriso $(pkg_version xorriso) squashfs $(pkg_version squashfs-tools) mtools $(pkg_version mtools)"
	} | sha256sum | cut -c1-16
)

cache_root="${NEUROFLOW_CACHE_DIR:-${HOME:?HOME is not set}/.cache/neuroflow}"
base="$cache_root/iso"
mkdir -p "$base"
base=$(cd "$base" && pwd)
out="$base/$hash"

publish() {
	mkdir -p "$(dirname "$out_iso")"
	if ! cmp -s "$out/neuroflow.iso" "$out_iso" 2>/dev/null; then
		cp "$out/neuroflow.iso" "$out_iso.tmp.$$"
		mv -f "$out_iso.tmp.$$" "$out_iso"
	fi
	log "$out_iso: $(($(stat -c %s "$out_iso") / 1048576)) MiB (rootfs.squashfs $(($(stat -c %s "$out/rootfs.squashfs") / 1048576)) MiB, initrd.img $(($(stat -c %s "$out/initrd.img") / 1024)) KiB)"
	echo "$out_iso" >&3
}

if [[ -f "$out/build.json" && "$force" == 0 ]]; then
	log "cache hit: $out"
	publish
	exit 0
fi

# One build at a time; whoever waited finds the other's result.
exec 9>"$base/.lock"
flock 9
if [[ -f "$out/build.json" && "$force" == 0 ]]; then
	log "cache hit (built by another process): $out"
	publish
	exit 0
fi

log "building $hash (NeuroFlow $version, kernel $kver)"
start_s=$SECONDS
tmp=$(mktemp -d "$base/.tmp-$hash-XXXXXX")
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() { if [[ -n "${tmp:-}" ]]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

copy_module() { # copy_module REL DESTROOT: uncompressed, at lib/modules/KVER/REL
	local src="$moddir/$1" dst="$2/lib/modules/$kver/${1%%.ko*}.ko"
	mkdir -p "$(dirname "$dst")"
	case "$src" in
	*.ko) cp "$src" "$dst" ;;
	*.ko.xz) xz -dc "$src" >"$dst" ;;
	*.ko.gz) gzip -dc "$src" >"$dst" ;;
	*.ko.zst) zstd -dcq "$src" >"$dst" ;;
	*) die "unsupported module file $src" ;;
	esac
}
busybox_tree() { # busybox_tree ROOT: merged /usr layout with busybox and its applets
	local r=$1 a
	mkdir -p "$r"/usr/{bin,sbin,lib,lib64} "$r"/{dev,proc,sys,run,tmp,root,mnt,etc}
	ln -s usr/bin "$r/bin"
	ln -s usr/sbin "$r/sbin"
	ln -s usr/lib "$r/lib"
	ln -s usr/lib64 "$r/lib64"
	chmod 1777 "$r/tmp"
	chmod 700 "$r/root"
	install -m 755 "$BUSYBOX" "$r/usr/bin/busybox"
	# Each applet where busybox says it lives (bin/X and sbin/X land in usr/ through the merge links).
	while IFS= read -r a; do
		case "$a" in
		'' | */busybox) ;;
		*bin/*) ln -sf /usr/bin/busybox "$r/usr/${a#usr/}" ;;
		esac
	done < <("$BUSYBOX" --list-full)
}

# --- initramfs --------------------------------------------------------------------------------------
iroot="$tmp/initramfs"
busybox_tree "$iroot"
mknod -m 600 "$iroot/dev/console" c 5 1
install -m 755 "$SCRIPT_DIR/initramfs/init" "$iroot/init"
: >"$iroot/etc/modules.order"
for m in "${initrd_mods[@]}"; do
	copy_module "$m" "$iroot"
	echo "${m%%.ko*}.ko" >>"$iroot/etc/modules.order"
done
(cd "$iroot" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --reproducible --quiet) |
	gzip -6 -n >"$tmp/initrd.img"
rm -rf "$iroot"
log "initramfs: ${#initrd_mods[@]} modules, $(($(stat -c %s "$tmp/initrd.img") / 1024)) KiB"

# --- root file system -------------------------------------------------------------------------------
root="$tmp/rootfs"
busybox_tree "$root"
mkdir -p "$root"/var/{lib/neuroflow,log/neuroflow,tmp} "$root"/etc/neuroflow "$root"/boot "$root"/home \
	"$root"/usr/lib/neuroflow "$root"/etc/openvswitch "$root"/etc/ovn
ln -s /run "$root/var/run"
ln -s /run/lock "$root/var/lock"
chmod 1777 "$root/var/tmp"
chmod 700 "$root/var/lib/neuroflow"
ln -sf /proc/self/mounts "$root/etc/mtab"
# A host file at the same path (through the /usr merge symlinks), without following it into the host.
put() { # put SRC [MODE]
	local src=$1 dst="$root$1"
	mkdir -p "$(dirname "$dst")"
	cp -L --remove-destination "$src" "$dst"
	if [[ -n "${2:-}" ]]; then chmod "$2" "$dst"; fi
}
for p in "${programs[@]}"; do put "$p" 755; done
for l in "${libs[@]}"; do put "$l" 755; done
for d in "${DATA_DIRS[@]}"; do
	if [[ -d "$d" ]]; then
		mkdir -p "$root$d"
		cp -rL "$d/." "$root$d/"
	else
		log "note: $d is missing; skipped"
	fi
done
# GRUB's prebuilt monolithic EFI images are not used by grub-install --removable.
rm -rf "$root/usr/lib/grub/x86_64-efi/monolithic"
for f in "${OPTIONAL_FILES[@]}"; do if [[ -e "$f" ]]; then put "$f" 644; fi; done
# mkfs.vfat, mkfs.ext4... under their usual names (dosfstools and e2fsprogs ship them as links).
ln -sf mkfs.fat "$root/usr/sbin/mkfs.vfat"
ln -sf fsck.fat "$root/usr/sbin/fsck.vfat"
for n in mkfs.ext4 mkfs.ext2 mkfs.ext3; do ln -sf mke2fs "$root/usr/sbin/$n"; done
for n in fsck.ext4 fsck.ext2 fsck.ext3; do ln -sf e2fsck "$root/usr/sbin/$n"; done
install -m 755 "$NEUROFLOW_BINARY" "$root/usr/bin/neuroflow"
install -m 755 "$AGENT_BINARY" "$root/usr/lib/neuroflow/neuroflow-agent"

# Kernel modules with a real modules.dep (busybox modprobe) and the load list for `appliance boot`.
: >"$root/etc/neuroflow/modules.order"
for m in "${host_mods[@]}"; do
	copy_module "$m" "$root"
	echo "${m%%.ko*}.ko" >>"$root/etc/neuroflow/modules.order"
done
for m in "${hw_mods[@]}"; do copy_module "$m" "$root"; done
for f in modules.builtin modules.builtin.modinfo modules.order; do
	if [[ -f "$moddir/$f" ]]; then cp "$moddir/$f" "$root/lib/modules/$kver/"; fi
done
depmod -b "$root" "$kver" || die "depmod failed"
# The KVM probe of `neuroflow serve` boots /boot/vmlinuz-*: the kernel copy in RAM.
ln -s /run/neuroflow/live/medium/vmlinuz "$root/boot/vmlinuz-$kver"

# Our files (iso/rootfs/), with their modes set here (git keeps only the executable bit).
cp -a "$SCRIPT_DIR/rootfs/." "$root/"
chmod 600 "$root/etc/shadow"
chmod 644 "$root"/etc/{passwd,group,profile,shells,inittab}
: >"$root/etc/resolv.conf"
echo neuroflow >"$root/etc/hostname"
printf '127.0.0.1\tlocalhost\n::1\tlocalhost\n' >"$root/etc/hosts"
cat >"$root/etc/os-release" <<EOF
PRETTY_NAME="NeuroFlow $version"
NAME="NeuroFlow"
ID=neuroflow
VERSION_ID="$version"
BUILD_ID="$hash"
EOF
printf 'NeuroFlow %s (\\l)\n\n' "$version" >"$root/etc/issue"
printf '{"version":"%s","hash":"%s","kernel":"%s"}\n' "$version" "$hash" "$kver" >"$root/etc/neuroflow/build.json"

# Every program must run inside the image with the libraries copied there.
for p in /usr/bin/qemu-system-x86_64 /usr/bin/qemu-img /usr/bin/etcd /usr/sbin/ovs-vswitchd /usr/bin/ovn-controller \
	/usr/sbin/sfdisk /usr/sbin/mke2fs /usr/sbin/grub-install /usr/sbin/ip /usr/sbin/dropbear /usr/sbin/nft; do
	[[ -e "$root$p" ]] || continue
	chroot "$root" "$p" --version >/dev/null 2>&1 || chroot "$root" "$p" -V >/dev/null 2>&1 ||
		die "$p does not run inside the image (try: chroot $root $p --version)"
done
# dropbearkey has no version option: its usage text (exit 0) shows it loads.
chroot "$root" /usr/bin/dropbearkey -h >/dev/null 2>&1 ||
	die "/usr/bin/dropbearkey does not run inside the image (try: chroot $root /usr/bin/dropbearkey -h)"
# Bun needs /proc: a private mount namespace keeps the proc mount from leaking.
unshare --mount --fork sh -c 'mount -t proc proc "$1/proc" && chroot "$1" /usr/bin/neuroflow version' sh "$root" >/dev/null ||
	die "/usr/bin/neuroflow does not run inside the image"
# passt re-executes its AVX2 build through /proc/self/exe: it needs /proc as well.
unshare --mount --fork sh -c 'mount -t proc proc "$1/proc" && chroot "$1" /usr/bin/passt --version' sh "$root" >/dev/null 2>&1 ||
	die "/usr/bin/passt does not run inside the image"

mksquashfs "$root" "$tmp/rootfs.squashfs" "${SQUASHFS_COMP[@]}" -noappend -all-root -quiet -no-progress \
	-mkfs-time 0 -all-time 0 >&2 || die "mksquashfs failed"
rootfs_kib=$(du -sk "$root" | cut -f1)
rm -rf "$root"
log "rootfs: ${#host_mods[@]}+${#hw_mods[@]} modules, $((rootfs_kib / 1024)) MiB -> $(($(stat -c %s "$tmp/rootfs.squashfs") / 1048576)) MiB squashfs"

# --- ISO --------------------------------------------------------------------------------------------
cp "/boot/vmlinuz-$kver" "$tmp/vmlinuz"
iso="$tmp/iso"
mkdir -p "$iso/boot/grub"
cp "$tmp/vmlinuz" "$tmp/initrd.img" "$iso/boot/"
ln "$tmp/rootfs.squashfs" "$iso/rootfs.squashfs"
echo "$(sha256 "$tmp/rootfs.squashfs")  rootfs.squashfs" >"$iso/rootfs.sha256"
sed -e "s|@VERSION@|$version|g" -e "s|@CMDLINE@|$CMDLINE|g" "$SCRIPT_DIR/grub/grub.cfg" >"$iso/boot/grub/grub.cfg"
json() {
	printf '{\n  "version": "%s",\n  "hash": "%s",\n  "kernel": "%s",\n  "cmdline": "%s",\n' \
		"$version" "$hash" "$kver" "$CMDLINE"
	printf '  "rootfsUncompressedBytes": %d,\n' "$((rootfs_kib * 1024))"
	printf '  "files": {\n'
	local sep=, f
	local files=("$@")
	for i in "${!files[@]}"; do
		f=${files[$i]}
		((i == ${#files[@]} - 1)) && sep=
		printf '    "%s": { "bytes": %d, "sha256": "%s" }%s\n' "$f" "$(stat -c %s "$tmp/$f")" "$(sha256 "$tmp/$f")" "$sep"
	done
	printf '  }\n}\n'
}
json vmlinuz initrd.img rootfs.squashfs >"$iso/build.json"
if ! xlog=$(grub-mkrescue --compress=xz --locales= --fonts= --themes= -o "$tmp/neuroflow.iso" "$iso" \
	-- -volid NEUROFLOW 2>&1); then
	printf '%s\n' "$xlog" >&2
	die "grub-mkrescue failed"
fi
rm -rf "$iso"
json vmlinuz initrd.img rootfs.squashfs neuroflow.iso >"$tmp/build.json"
chmod 755 "$tmp"
chmod 644 "$tmp"/*

if [[ -e "$out" ]]; then
	old=$(mktemp -d "$base/.old-$hash-XXXXXX")
	mv -T "$out" "$old/x"
	rm -rf "$old"
fi
mv -T "$tmp" "$out"
tmp=
log "built $out in $((SECONDS - start_s)) s"
# Keep this build and the one before it; older ones only fill the disk (~130 MiB each).
while IFS= read -r old; do
	[[ "$old" == "$out" ]] && continue
	log "removing the old build $old"
	rm -rf "$old"
done < <(find "$base" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@ %p\n' | sort -rn | tail -n +3 | cut -d' ' -f2-)
publish
