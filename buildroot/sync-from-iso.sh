#!/usr/bin/env bash
# Copies into board/neuroflow/ the files it shares with the Debian ISO builder (iso/), so that both
# images boot and run the same way: GRUB's menu, the initramfs /init and its module list, and the
# root file system's files (iso/rootfs/ -> rootfs-overlay/, plus etc/hostname). Modes are kept.
# scripts/buildroot-tree.test.ts fails while a copy differs from its original: run this then.
#
# Usage: buildroot/sync-from-iso.sh
set -euo pipefail
br=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
iso=$(cd "$br/../iso" && pwd)
board=$br/board/neuroflow

cp -p "$iso/grub/grub.cfg" "$board/grub.cfg"
mkdir -p "$board/initramfs"
cp -p "$iso/initramfs/init" "$iso/initramfs/modules" "$board/initramfs/"
rm -rf "$board/rootfs-overlay"
cp -a "$iso/rootfs" "$board/rootfs-overlay"
echo neuroflow >"$board/rootfs-overlay/etc/hostname"
echo "synced $board from $iso" >&2
