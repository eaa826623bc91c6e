#!/usr/bin/env bash
# Installs what a fresh Debian 12 machine lacks to build, run and test NeuroFlow. Idempotent: it only
# calls apt-get or npm when something is missing or changed. Both README commands run it.
set -euo pipefail
cd "$(dirname "$0")/.."

# Runtime: QEMU, qemu-img, etcd. Test guest and demo image: kernel, busybox, cpio, ISO tools.
DEBIAN_PACKAGES=(
  qemu-system-x86 qemu-utils etcd-server etcd-client
  linux-image-amd64 busybox-static cpio kmod xz-utils zstd e2fsprogs
  isolinux syslinux-common xorriso qemu-guest-agent
  iproute2 procps ca-certificates protobuf-compiler
  chromium
  # The appliance ISO (iso/build.sh): GRUB for BIOS and UEFI, mtools for the EFI image, squashfs, the
  # installer's partitioning and mkfs tools, Open vSwitch/OVN, QEMU's rbd driver (librbd/librados), OVMF,
  # Dropbear (the appliance's SSH server while the console enables it).
  grub-pc-bin grub-efi-amd64-bin grub-common grub2-common mtools dosfstools squashfs-tools gdisk fdisk
  openvswitch-switch ovn-host ovn-central qemu-block-extra ovmf dropbear-bin
  # The nat network: passt (userspace NAT per NIC), nftables (keeps passt off every host address).
  passt nftables
  # vTPM: swtpm emulates a TPM 2.0 per VM; swtpm_setup (swtpm-tools) manufactures it with EK certificates.
  swtpm swtpm-tools
  # Integrated Ceph (src/ceph): monitors, managers, OSDs, and the ceph/rbd tools; QEMU's rbd driver is
  # in qemu-block-extra above.
  ceph-mon ceph-mgr ceph-osd ceph-common
  # Backups: restic, the reference bench/backup.ts measures NeuroFlow's repository against.
  restic
)

missing=()
for p in "${DEBIAN_PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run as root, or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # Debian's chromium package names these groups in its file ownership but does not create them on a
  # minimal system, and dpkg then fails.
  for group in ssl-cert messagebus; do
    getent group "$group" >/dev/null || groupadd -r "$group"
  done
  apt-get update -qq
  # policy-rc.d may forbid starting services; we start etcd ourselves anyway.
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

# npm packages, reinstalled only when the lockfile changed.
stamp=node_modules/.neuroflow-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
  echo "setup: npm ci" >&2
  npm ci --no-audit --no-fund >&2
  echo "$want" > "$stamp"
fi
# npm 11 does not run install scripts by default; bun's postinstall fetches its real binary.
if ! node_modules/.bin/bun --version >/dev/null 2>&1; then
  node node_modules/bun/install.js >&2
fi
node_modules/.bin/bun --version >/dev/null
