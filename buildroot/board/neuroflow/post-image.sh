#!/usr/bin/env bash
# Buildroot post-image script (BR2_ROOTFS_POST_IMAGE_SCRIPT): makes the appliance ISO with the same
# layout as the Debian one of iso/build.sh, from Buildroot's kernel (bzImage), root file system
# (rootfs.squashfs) and GRUB.
#
# Usage (by Buildroot): post-image.sh BINARIES_DIR
#   Environment from Buildroot: TARGET_DIR, HOST_DIR, BUILD_DIR, BR2_CONFIG.
#   NF_GRUB_PC_DIR / NF_GRUB_EFI_DIR: GRUB platform directories (default: the target's, which
#   BR2_TARGET_GRUB2_INSTALL_TOOLS installs for the installer).
#
# Output in BINARIES_DIR:
#   neuroflow.iso  hybrid ISO (BIOS El Torito + UEFI, dd-able to a USB stick), volume NEUROFLOW:
#                  /boot/vmlinuz, /boot/initrd.img, /rootfs.squashfs, /rootfs.sha256, /build.json,
#                  /boot/grub/grub.cfg (board grub.cfg = iso/grub/grub.cfg), /boot/grub/{i386-pc,x86_64-efi}
#   initrd.img     gzip'd cpio: busybox (with its musl libraries), initramfs/init (= iso/initramfs/init),
#                  /etc/modules.order (empty when the kernel has the drivers built in)
#   vmlinuz, rootfs.sha256, build.json
#
# GRUB: Buildroot's iso9660 image type boots either BIOS or UEFI, not both, and grub-mkrescue takes one
# platform directory (-d) at a time; so this does what grub-mkrescue does for a BIOS+UEFI image:
# grub-mkimage an El Torito core (i386-pc) and a BOOTX64.EFI in a FAT image, copy both module sets to
# /boot/grub, and let xorriso write a hybrid image (MBR boot_hybrid.img, El Torito, EFI partition).
set -euo pipefail

NF_SCRIPT=post-image
BOARD_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$BOARD_DIR/lib.sh"
BIN=${1:-${BINARIES_DIR:-}}
[[ -n "$BIN" && -d "$BIN" ]] || die "usage: post-image.sh BINARIES_DIR"
TARGET=${TARGET_DIR:?TARGET_DIR is not set (run by Buildroot, or export it)}

kernel=$BIN/bzImage
squashfs=$BIN/rootfs.squashfs
[[ -f "$kernel" ]] || die "$kernel not found (BR2_LINUX_KERNEL_BZIMAGE)"
[[ -f "$squashfs" ]] || die "$squashfs not found (BR2_TARGET_ROOTFS_SQUASHFS)"
version=$(sed -n 's/^VERSION_ID="\(.*\)"$/\1/p' "$TARGET/etc/os-release" 2>/dev/null || true)
hash=$(sed -n 's/^BUILD_ID="\(.*\)"$/\1/p' "$TARGET/etc/os-release" 2>/dev/null || true)
version=${version:-unknown}
hash=${hash:-$(sha256sum "$squashfs" | cut -c1-16)}
krel=$(nf_kernel_release "$TARGET")
sha256() { sha256sum "$1" | cut -d' ' -f1; }

grub_dir() { # grub_dir PLATFORM: the directory with PLATFORM's modules and images
	local d
	for d in "$TARGET/lib/grub/$1" "$TARGET/usr/lib/grub/$1"; do
		if [[ -f "$d/normal.mod" ]]; then
			echo "$d"
			return 0
		fi
	done
	die "GRUB $1 modules not found in $TARGET/lib/grub (BR2_TARGET_GRUB2_INSTALL_TOOLS with the $1 platform)"
}
pc_dir=${NF_GRUB_PC_DIR:-$(grub_dir i386-pc)}
efi_dir=${NF_GRUB_EFI_DIR:-$(grub_dir x86_64-efi)}
[[ -f "$pc_dir/boot_hybrid.img" ]] || die "$pc_dir/boot_hybrid.img not found"
mkimage=$(nf_tool grub-mkimage)
xorriso=$(nf_tool xorriso)
mkfs_vfat=$(nf_tool mkfs.vfat)
mmd=$(nf_tool mmd)
mcopy=$(nf_tool mcopy)

work=$(mktemp -d "$BIN/.neuroflow-iso-XXXXXX")
trap 'rm -rf "$work"' EXIT

# --- initramfs ----------------------------------------------------------------------------------
# The ISO's layout (merged /usr) with the target's busybox and the libraries it needs.
iroot=$work/initramfs
mkdir -p "$iroot"/usr/{bin,sbin,lib} "$iroot"/{dev,proc,sys,run,tmp,root,mnt,etc}
ln -s usr/bin "$iroot/bin"
ln -s usr/sbin "$iroot/sbin"
ln -s usr/lib "$iroot/lib"
ln -s usr/lib "$iroot/lib64"
chmod 1777 "$iroot/tmp"
busybox=
for b in bin/busybox usr/bin/busybox; do [[ -f "$TARGET/$b" ]] && busybox=$TARGET/$b && break; done
[[ -n "$busybox" ]] || die "busybox not found in $TARGET"
install -m 755 "$busybox" "$iroot/usr/bin/busybox"
readelf=$(nf_readelf)
interp=$("$readelf" -l "$busybox" | sed -n 's/.*Requesting program interpreter: \(.*\)\]$/\1/p')
find_lib() { # find_lib NAME: the library in the target's library directories
	local d
	for d in lib usr/lib lib64 usr/lib64; do
		if [[ -e "$TARGET/$d/$1" ]]; then
			echo "$TARGET/$d/$1"
			return 0
		fi
	done
	return 1
}
if [[ -n "$interp" ]]; then
	cp -L "$TARGET$interp" "$iroot/usr/lib/${interp##*/}"
	while IFS= read -r lib; do
		f=$(find_lib "$lib") || die "busybox needs $lib, not found in $TARGET"
		cp -L "$f" "$iroot/usr/lib/$lib"
	done < <("$readelf" -d "$busybox" | sed -n 's/.*(NEEDED).*\[\(.*\)\]$/\1/p')
	# musl's dynamic linker is its libc.so: one file, two names.
	for lib in "$iroot"/usr/lib/*; do
		if [[ "$lib" != "$iroot/usr/lib/${interp##*/}" ]] && cmp -s "$lib" "$iroot/usr/lib/${interp##*/}"; then
			ln -sf "${lib##*/}" "$iroot/usr/lib/${interp##*/}"
			break
		fi
	done
	run_busybox=("$TARGET$interp" --library-path "$TARGET/lib:$TARGET/usr/lib" "$busybox")
else
	run_busybox=("$busybox")
fi
# Its applets: from the binary when it runs here (an x86_64 build machine), else the ones init uses.
if ! applets=$("${run_busybox[@]}" --list 2>/dev/null) || [[ -z "$applets" ]]; then
	log "note: cannot run the target busybox here; linking the applets the initramfs uses"
	applets="sh mount umount mkdir cat cut du awk cp chmod sha256sum findfs insmod ls tr sed setsid
		cttyhack usleep switch_root uname echo sleep"
fi
for a in $applets; do
	if [[ "$a" != busybox ]]; then ln -sf busybox "$iroot/usr/bin/$a"; fi
done
install -m 755 "$BOARD_DIR/initramfs/init" "$iroot/init"
# Kernel modules to find the medium, when the kernel has them as modules (not built in).
: >"$iroot/etc/modules.order"
nmods=0
if [[ -n "$krel" && -f "$TARGET/lib/modules/$krel/modules.dep" ]]; then
	while IFS= read -r m; do
		nf_copy_module "$TARGET/lib/modules/$krel" "$m" "$iroot" "$krel"
		echo "${m%%.ko*}.ko" >>"$iroot/etc/modules.order"
		nmods=$((nmods + 1))
	done < <(nf_modules_closure "$TARGET/lib/modules/$krel" "$BOARD_DIR/initramfs/modules")
fi
cpio_opts=(-o -H newc -R 0:0 --quiet)
if cpio --help 2>&1 | grep -q -- --reproducible; then cpio_opts+=(--reproducible); fi
pack() { # the cpio archive of the current directory
	find . -mindepth 1 | LC_ALL=C sort | cpio "${cpio_opts[@]}"
}
# /dev/console needs a device node: as root, or under Buildroot's fakeroot.
export cpio_opts_str="${cpio_opts[*]}"
if [[ $(id -u) == 0 ]]; then
	mknod -m 600 "$iroot/dev/console" c 5 1
	(cd "$iroot" && pack) | gzip -6 -n >"$BIN/initrd.img"
elif fakeroot=$(nf_tool fakeroot 2>/dev/null); then
	# shellcheck disable=SC2016 # expanded by the inner bash
	(cd "$iroot" && "$fakeroot" -- bash -c 'mknod -m 600 dev/console c 5 1 &&
		find . -mindepth 1 | LC_ALL=C sort | cpio $cpio_opts_str') | gzip -6 -n >"$BIN/initrd.img"
else
	log "note: neither root nor fakeroot: no /dev/console node in the initramfs (init mounts devtmpfs)"
	(cd "$iroot" && pack) | gzip -6 -n >"$BIN/initrd.img"
fi
log "initrd.img: $nmods modules, $(($(stat -c %s "$BIN/initrd.img") / 1024)) KiB"

# --- the ISO tree -------------------------------------------------------------------------------
cp "$kernel" "$BIN/vmlinuz"
iso=$work/iso
mkdir -p "$iso/boot/grub/i386-pc" "$iso/boot/grub/x86_64-efi"
cp "$BIN/vmlinuz" "$BIN/initrd.img" "$iso/boot/"
cp "$squashfs" "$iso/rootfs.squashfs"
echo "$(sha256 "$squashfs")  rootfs.squashfs" >"$BIN/rootfs.sha256"
cp "$BIN/rootfs.sha256" "$iso/rootfs.sha256"
sed -e "s|@VERSION@|$version|g" -e "s|@CMDLINE@|$NF_CMDLINE|g" "$BOARD_DIR/grub.cfg" >"$iso/boot/grub/grub.cfg"
rootfs_bytes=$(($(du -sk "$TARGET" | cut -f1) * 1024))
json() { # json FILE...: build.json, the shape of iso/build.sh's
	printf '{\n  "version": "%s",\n  "hash": "%s",\n  "kernel": "%s",\n  "cmdline": "%s",\n' \
		"$version" "$hash" "${krel:-unknown}" "$NF_CMDLINE"
	printf '  "builder": "buildroot",\n  "libc": "musl",\n'
	printf '  "rootfsUncompressedBytes": %d,\n  "files": {\n' "$rootfs_bytes"
	local i sep=, files=("$@")
	for i in "${!files[@]}"; do
		((i == ${#files[@]} - 1)) && sep=
		printf '    "%s": { "bytes": %d, "sha256": "%s" }%s\n' "${files[$i]}" \
			"$(stat -c %s "$BIN/${files[$i]}")" "$(sha256 "$BIN/${files[$i]}")" "$sep"
	done
	printf '  }\n}\n'
}
json vmlinuz initrd.img rootfs.squashfs >"$iso/build.json"

# --- GRUB: BIOS (El Torito + MBR) and UEFI (BOOTX64.EFI in a FAT image), like grub-mkrescue -------
cp "$pc_dir"/*.mod "$pc_dir"/*.lst "$iso/boot/grub/i386-pc/"
cp "$efi_dir"/*.mod "$efi_dir"/*.lst "$iso/boot/grub/x86_64-efi/"
# The EFI core finds the ISO by this file (grub-mkrescue uses the volume's UUID the same way).
stamp="neuroflow-$hash.stamp"
: >"$iso/boot/grub/$stamp"
"$mkimage" -O i386-pc-eltorito -d "$pc_dir" -p /boot/grub -o "$iso/boot/grub/i386-pc/eltorito.img" \
	biosdisk iso9660 part_msdos part_gpt
cat >"$work/early.cfg" <<EOF
search --no-floppy --set=root --file /boot/grub/$stamp
set prefix=(\$root)/boot/grub
EOF
"$mkimage" -O x86_64-efi -d "$efi_dir" -p /boot/grub -c "$work/early.cfg" -o "$work/BOOTX64.EFI" \
	search search_fs_file iso9660 part_gpt part_msdos fat normal configfile
efi_kib=$((($(stat -c %s "$work/BOOTX64.EFI") / 1024 + 511) / 512 * 512 + 512))
"$mkfs_vfat" -C -n NF-EFI "$iso/efi.img" "$efi_kib" >/dev/null
MTOOLS_SKIP_CHECK=1 "$mmd" -i "$iso/efi.img" ::/EFI ::/EFI/BOOT
MTOOLS_SKIP_CHECK=1 "$mcopy" -i "$iso/efi.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI

rm -f "$BIN/neuroflow.iso"
"$xorriso" -as mkisofs -graft-points -r -volid NEUROFLOW \
	-b boot/grub/i386-pc/eltorito.img -no-emul-boot -boot-load-size 4 -boot-info-table --grub2-boot-info \
	--grub2-mbr "$pc_dir/boot_hybrid.img" \
	--efi-boot efi.img -efi-boot-part --efi-boot-image --protective-msdos-label \
	-o "$BIN/neuroflow.iso" "$iso" --sort-weight 0 / --sort-weight 1 /boot 2>"$work/xorriso.log" || {
	cat "$work/xorriso.log" >&2
	die "xorriso failed"
}
json vmlinuz initrd.img rootfs.squashfs neuroflow.iso >"$BIN/build.json"
log "$BIN/neuroflow.iso: $(($(stat -c %s "$BIN/neuroflow.iso") / 1048576)) MiB (NeuroFlow $version, kernel ${krel:-unknown})"
