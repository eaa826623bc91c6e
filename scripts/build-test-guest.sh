#!/usr/bin/env bash
# Builds the NeuroFlow test guest: a tiny busybox Linux made from the Debian
# packages installed on this host (linux-image-amd64, busybox-static, isolinux,
# qemu-guest-agent, e2fsprogs) plus our guest agent, booting under QEMU TCG in
# a few seconds (~2-4 s with -kernel vmlinux). Used by the tests and as the
# product's demo image.
#
# Usage: scripts/build-test-guest.sh [--force]
#   dir=$(scripts/build-test-guest.sh | tail -1)
# Environment: NEUROFLOW_AGENT_BINARY  our static guest agent
#   (default <repo>/dist/neuroflow-agent, built by "npm run build:agent").
#
# Output: ${NEUROFLOW_CACHE_DIR:-$HOME/.cache/neuroflow}/test-guest/<hash>/
#   vmlinux        uncompressed kernel (ELF, PVH entry): qemu -kernel vmlinux
#   vmlinuz        the distribution bzImage
#   initrd.img     gzip'd newc cpio: busybox + virtio/ext4/ACPI-button modules
#                  + our agent (/bin/neuroflow-agent, respawned by init)
#   initrd-qemu-ga.img  the same guest with Debian's stock qemu-ga (and its
#                  shared libraries) as the agent instead of ours (plain cpio)
#   demo.iso       BIOS-bootable (isolinux, hybrid) CD image: vmlinuz + initrd.img
#   data-ext4.img  raw 64 MiB ext4 disk labelled nfdata: the guest mounts it
#                  at /data (fsfreeze tests; give VMs a copy, never this file)
#   manifest.json  kernelVersion, recommended cmdline, initrdQemuGa, dataDisk,
#                  users (name -> initial password), sha256 of each file
# Both initrds have root (no password), test (uid 1000, password initial-pass)
# and nobody in /etc/passwd + /etc/shadow, a chpasswd and a /sbin/shutdown
# for the agents, and "login-check USER" for a real password check on the
# serial console. Agents talk on the virtio-serial port org.qemu.guest_agent.0.
# <hash> covers this script, scripts/guest/*, the kernel, busybox, our agent
# and qemu-ga with its libraries (versions and contents) and the isolinux,
# xorriso and e2fsprogs versions; an existing complete directory is reused as
# is. Builds go to a temp dir next to it and are renamed into place
# atomically, so concurrent runs are safe.
#
# The last line of stdout is the output directory; all logging goes to stderr.
# Guest behaviour (markers printed on the serial console, shell on ttyS0,
# DHCP, ACPI power button, agents, /data) is implemented by the files in
# scripts/guest/.
set -euo pipefail

# Recommended kernel command line for "-kernel vmlinux -initrd initrd.img".
# Boot-time savings under TCG: cryptomgr.notests skips the crypto self-tests
# (~0.5 s), initcall_blacklist=crypto_kdf108_init skips the one self-test that
# ignores it (~0.15 s; that initcall only runs the test), mitigations=off ~0.1 s.
# panic=-1 reboots at once on a panic (QEMU exits if run with -no-reboot).
KERNEL_CMDLINE="console=ttyS0 panic=-1 quiet cryptomgr.notests initcall_blacklist=crypto_kdf108_init mitigations=off"
# Command line baked into demo.iso (serial + VGA console; /dev/console is tty0).
ISO_CMDLINE="console=ttyS0 console=tty0 cryptomgr.notests initcall_blacklist=crypto_kdf108_init"

ISOLINUX_BIN=/usr/lib/ISOLINUX/isolinux.bin
ISOHYBRID_MBR=/usr/lib/ISOLINUX/isohdpfx.bin
LDLINUX_C32=/usr/lib/syslinux/modules/bios/ldlinux.c32
BUSYBOX=/bin/busybox
QEMU_GA=/usr/sbin/qemu-ga
# Users of both initrds: the test user's initial password (also in manifest.json).
TEST_USER="test"
TEST_PASSWORD="initial-pass"

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SCRIPT_PATH="$SCRIPT_DIR/$(basename "${BASH_SOURCE[0]}")"
GUEST_DIR="$SCRIPT_DIR/guest"
REPO_DIR=$(dirname "$SCRIPT_DIR")
AGENT_BINARY="${NEUROFLOW_AGENT_BINARY:-$REPO_DIR/dist/neuroflow-agent}"
# 4 KiB random-write benchmark tool, built beside the agent (scripts/build-agent.sh): /bin/nf-iobench
IOBENCH_BINARY="$(dirname "$AGENT_BINARY")/nf-iobench"

# Everything but the final path goes to stderr.
exec 3>&1 1>&2

log() { printf 'build-test-guest: %s\n' "$*" >&2; }
die() {
	printf 'build-test-guest: error: %s\n' "$*" >&2
	exit 1
}

force=0
for arg in "$@"; do
	case "$arg" in
	--force) force=1 ;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$SCRIPT_PATH" | sed '$d; s/^# \{0,1\}//' >&2
		exit 0
		;;
	*) die "unknown argument: $arg (see --help)" ;;
	esac
done

need_cmd() { # need_cmd COMMAND DEBIAN-PACKAGE
	command -v "$1" >/dev/null 2>&1 ||
		die "'$1' not found; install the Debian package '$2' (apt-get install $2)"
}
need_file() { # need_file PATH DEBIAN-PACKAGE
	[[ -r "$1" ]] ||
		die "$1 not found; install the Debian package '$2' (apt-get install $2)"
}
pkg_version() { dpkg-query -W -f='${Version}' "$1" 2>/dev/null || true; }
sha256() { sha256sum "$1" | cut -d' ' -f1; }

# --- prerequisites ----------------------------------------------------------
need_cmd dpkg-query dpkg
need_cmd sha256sum coreutils
need_cmd cpio cpio
need_cmd gzip gzip
need_cmd xz xz-utils
need_cmd od coreutils
need_cmd xorriso xorriso
need_cmd ldd libc-bin
need_cmd truncate coreutils
need_cmd mkfs.ext4 e2fsprogs
need_file "$ISOLINUX_BIN" isolinux
need_file "$ISOHYBRID_MBR" isolinux
need_file "$LDLINUX_C32" syslinux-common
[[ -d "$GUEST_DIR" ]] || die "$GUEST_DIR is missing"

busybox_version=$(pkg_version busybox-static)
[[ -n "$busybox_version" && -x "$BUSYBOX" ]] ||
	die "static busybox not found; install the Debian package 'busybox-static' (apt-get install busybox-static)"

# Our guest agent (static binary; a script with a #!/bin/sh line works too).
[[ -f "$AGENT_BINARY" && -r "$AGENT_BINARY" ]] ||
	die "guest agent $AGENT_BINARY not found: build it with 'npm run build:agent' (scripts/build-agent.sh), or point NEUROFLOW_AGENT_BINARY at it"
if ldd "$AGENT_BINARY" 2>/dev/null | grep -q '=>'; then
	log "warning: $AGENT_BINARY is dynamically linked; the guest has no shared libraries for it"
fi

# Debian's stock qemu-ga and the shared libraries it needs (copied into
# initrd-qemu-ga.img at the same paths, with the dynamic loader).
qemu_ga_version=$(pkg_version qemu-guest-agent)
[[ -n "$qemu_ga_version" && -x "$QEMU_GA" ]] ||
	die "$QEMU_GA not found; install the Debian package 'qemu-guest-agent' (apt-get install qemu-guest-agent)"
qemu_ga_libs=()
while IFS= read -r lib; do
	qemu_ga_libs+=("$lib")
done < <(ldd "$QEMU_GA" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' | sort -u)
((${#qemu_ga_libs[@]} > 0)) || die "ldd found no shared libraries for $QEMU_GA"

# Newest kernel in /boot that has its modules installed (independent of the
# running kernel).
kver=
while IFS= read -r img; do
	v=${img#/boot/vmlinuz-}
	if [[ -f "/lib/modules/$v/modules.dep" ]]; then kver=$v; fi
done < <(find /boot -maxdepth 1 -name 'vmlinuz-*' 2>/dev/null | sort -V)
[[ -n "$kver" ]] ||
	die "no /boot/vmlinuz-* with modules in /lib/modules; install the Debian package 'linux-image-amd64' (apt-get install linux-image-amd64)"
vmlinuz_src="/boot/vmlinuz-$kver"
moddir="/lib/modules/$kver"
[[ -r "$vmlinuz_src" ]] || die "$vmlinuz_src is not readable (run as root?)"
kernel_pkg=$(dpkg-query -S "$vmlinuz_src" 2>/dev/null | cut -d: -f1 | head -n1 || true)
kernel_pkg_version=
if [[ -n "$kernel_pkg" ]]; then kernel_pkg_version=$(pkg_version "$kernel_pkg"); fi

# --- cache key --------------------------------------------------------------
hash=$(
	{
		echo "neuroflow-test-guest v2"
		echo "script $(sha256 "$SCRIPT_PATH")"
		(cd "$GUEST_DIR" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum)
		echo "kernel $kver ${kernel_pkg:-?} ${kernel_pkg_version:-?} $(sha256 "$vmlinuz_src")"
		echo "busybox-static $busybox_version $(sha256 "$BUSYBOX")"
		echo "agent $(sha256 "$AGENT_BINARY")"
		if [[ -f "$IOBENCH_BINARY" ]]; then echo "iobench $(sha256 "$IOBENCH_BINARY")"; fi
		echo "qemu-guest-agent $qemu_ga_version $(sha256 "$QEMU_GA")"
		for lib in "${qemu_ga_libs[@]}"; do echo "lib $lib $(sha256 "$lib")"; done
		echo "isolinux $(pkg_version isolinux) syslinux-common $(pkg_version syslinux-common) xorriso $(pkg_version xorriso)"
		echo "e2fsprogs $(pkg_version e2fsprogs)"
	} | sha256sum | cut -c1-16
)

cache_root="${NEUROFLOW_CACHE_DIR:-${HOME:?HOME is not set}/.cache/neuroflow}"
base="$cache_root/test-guest"
mkdir -p "$base"
base=$(cd "$base" && pwd)
out="$base/$hash"

if [[ -f "$out/manifest.json" && "$force" == 0 ]]; then
	log "cache hit: $out"
	echo "$out" >&3
	exit 0
fi

log "building test guest $hash (kernel $kver, busybox-static $busybox_version)"
start_s=$SECONDS
tmp=$(mktemp -d "$base/.tmp-$hash-XXXXXX")
# shellcheck disable=SC2317 # invoked by the EXIT trap
cleanup() { if [[ -n "${tmp:-}" ]]; then rm -rf "$tmp"; fi; }
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- vmlinux: decompress the bzImage payload (like scripts/extract-vmlinux) ---
is_elf() { [[ "$(head -c4 "$1" | od -An -tx1 | tr -d ' \n')" == 7f454c46 ]]; }
extract_vmlinux() { # extract_vmlinux BZIMAGE OUT
	local img=$1 dst=$2 magic cmd off
	for spec in '\xFD7zXZ\x00|xz -dc --single-stream' \
		'\x28\xB5\x2F\xFD|zstd -dcq' \
		'\x1F\x8B\x08|gzip -dc'; do
		magic=${spec%%|*}
		cmd=${spec#*|}
		command -v "${cmd%% *}" >/dev/null 2>&1 || continue
		while IFS= read -r off; do
			# shellcheck disable=SC2086 # $cmd is a command with options
			tail -c "+$((off + 1))" "$img" | $cmd >"$dst" 2>/dev/null || true
			if [[ -s "$dst" ]] && is_elf "$dst"; then
				return 0
			fi
		done < <(LC_ALL=C grep -obUaP "$magic" "$img" | cut -d: -f1)
	done
	return 1
}
extract_vmlinux "$vmlinuz_src" "$tmp/vmlinux" ||
	die "could not extract an ELF vmlinux from $vmlinuz_src"
if [[ -r "/boot/config-$kver" ]] && ! grep -q '^CONFIG_PVH=y' "/boot/config-$kver"; then
	log "warning: CONFIG_PVH is not set for $kver: 'qemu -kernel vmlinux' will not boot it; use vmlinuz"
fi
cp "$vmlinuz_src" "$tmp/vmlinuz"

# --- initramfs --------------------------------------------------------------
root="$tmp/root"
mkdir -p "$root"/{bin,data,dev,etc/acpi/PWRF,home/"$TEST_USER",lib/modules/"$kver",mnt,proc,root,run,sys,tmp,var/log}
ln -s bin "$root/sbin"
mkdir -p "$root/usr"
ln -s ../bin "$root/usr/bin"
ln -s ../bin "$root/usr/sbin"
chmod 1777 "$root/tmp"
chmod 700 "$root/root"

cp "$BUSYBOX" "$root/bin/busybox"
# setuid root, so that su run by an unprivileged user can check a password
# (busybox drops the privileges for every other applet).
chmod 4755 "$root/bin/busybox"
while IFS= read -r applet; do
	if [[ -n "$applet" && "$applet" != busybox ]]; then ln -sf busybox "$root/bin/$applet"; fi
done < <("$BUSYBOX" --list)
[[ -e "$root/bin/sh" && -e "$root/bin/insmod" && -e "$root/bin/acpid" && -e "$root/bin/udhcpc" ]] ||
	die "$BUSYBOX lacks sh/insmod/acpid/udhcpc; install the Debian package 'busybox-static'"

install -m 755 "$GUEST_DIR/init" "$root/init"
install -m 755 "$GUEST_DIR/guest-shell" "$root/etc/guest-shell"
install -m 755 "$GUEST_DIR/announce" "$root/etc/announce"
install -m 755 "$GUEST_DIR/before-shutdown" "$root/etc/before-shutdown"
install -m 755 "$GUEST_DIR/udhcpc.script" "$root/etc/udhcpc.script"
install -m 755 "$GUEST_DIR/power-button" "$root/etc/acpi/PWRF/00000080"
install -m 644 "$GUEST_DIR/guest-lib.sh" "$root/etc/guest-lib.sh"
install -m 644 "$GUEST_DIR/profile" "$root/etc/profile"
install -m 755 "$GUEST_DIR/shutdown" "$root/bin/shutdown"
install -m 755 "$GUEST_DIR/chpasswd" "$root/bin/chpasswd"
install -m 755 "$GUEST_DIR/login-check" "$root/bin/login-check"
install -m 755 "$GUEST_DIR/tpm-nv" "$root/bin/tpm-nv"
install -m 755 "$GUEST_DIR/nocloud" "$root/bin/nocloud"
[[ -e "$root/bin/su" && -e "$root/bin/mkpasswd" && -e "$root/bin/findfs" ]] ||
	die "$BUSYBOX lacks su/mkpasswd/findfs; install the Debian package 'busybox-static'"
# Users: root without a password (as before), test with a SHA-512 crypt hash
# (fixed salt: reproducible), nobody for unprivileged su.
test_hash=$(printf '%s' "$TEST_PASSWORD" | "$BUSYBOX" mkpasswd -m sha512 -P 0 -S neuroflowtest)
[[ "$test_hash" == "\$6\$"* ]] || die "busybox mkpasswd could not make a SHA-512 hash"
cat >"$root/etc/passwd" <<EOF
root:x:0:0:root:/root:/bin/sh
$TEST_USER:x:1000:1000:NeuroFlow test user:/home/$TEST_USER:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
cat >"$root/etc/shadow" <<EOF
root::19000:0:99999:7:::
$TEST_USER:$test_hash:19000:0:99999:7:::
nobody:*:19000:0:99999:7:::
EOF
chmod 600 "$root/etc/shadow"
cat >"$root/etc/group" <<EOF
root:x:0:
tty:x:5:
$TEST_USER:x:1000:
nogroup:x:65534:
EOF
printf '/bin/sh\n/bin/ash\n' >"$root/etc/shells"
cat >"$root/etc/os-release" <<EOF
PRETTY_NAME="NeuroFlow test guest (busybox $busybox_version)"
NAME="NeuroFlow test guest"
ID=neuroflow-test-guest
VERSION_ID="$hash"
EOF
echo "neuroflow-guest" >"$root/etc/hostname"
: >"$root/etc/resolv.conf"

# Kernel modules: the names in guest/modules plus their dependencies
# (modules.dep), stored uncompressed, loaded by /init in dependency order.
declare -A mod_path=() mod_deps=() visited=()
modname() { # path/to/foo-bar.ko[.xz] -> foo_bar
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
order=()
visit() {
	local n=$1 d
	[[ -n "${visited[$n]:-}" ]] && return 0
	visited[$n]=1
	if [[ -z "${mod_path[$n]:-}" ]]; then
		if grep -Eq "/${n//_/[-_]}\.ko" "$moddir/modules.builtin" 2>/dev/null; then
			log "module $n is built into $kver"
			return 0
		fi
		die "kernel module '$n' not found in $moddir (is linux-image-amd64 complete?)"
	fi
	for d in ${mod_deps[$n]}; do
		visit "$(modname "$d")"
	done
	order+=("$n")
}
read_modules() { # read_modules LIST: visits every module named in LIST
	local m
	while IFS= read -r m; do
		m=${m%%#*}
		m=${m//[[:space:]]/}
		if [[ -n "$m" ]]; then visit "${m//-/_}"; fi
	done <"$1"
}
read_modules "$GUEST_DIR/modules"
base_count=${#order[@]}
# guest/modules-hw: loaded by /init only with "nf.hw" on the kernel command line
read_modules "$GUEST_DIR/modules-hw"

: >"$root/etc/modules.order"
: >"$root/etc/modules-hw.order"
: >"$root/lib/modules/$kver/modules.dep"
i=0
for n in "${order[@]}"; do
	list="$root/etc/modules.order"
	((i++ < base_count)) || list="$root/etc/modules-hw.order"

	src="$moddir/${mod_path[$n]}"
	rel="${mod_path[$n]%%.ko*}.ko"
	dst="$root/lib/modules/$kver/$rel"
	mkdir -p "$(dirname "$dst")"
	case "$src" in
	*.ko) cp "$src" "$dst" ;;
	*.ko.xz) xz -dc "$src" >"$dst" ;;
	*.ko.gz) gzip -dc "$src" >"$dst" ;;
	*.ko.zst)
		need_cmd zstd zstd
		zstd -dcq "$src" >"$dst"
		;;
	*) die "unsupported module file $src" ;;
	esac
	echo "$rel" >>"$list"
	deps=
	for d in ${mod_deps[$n]}; do deps+=" ${d%%.ko*}.ko"; done
	echo "$rel:$deps" >>"$root/lib/modules/$kver/modules.dep"
done
log "modules: ${order[*]}"

mkcpio() { # mkcpio DIR OUT [gzip]
	if [[ "${3:-}" == gzip ]]; then
		(cd "$1" && find . -mindepth 1 | LC_ALL=C sort |
			cpio -o -H newc -R 0:0 --reproducible --quiet) | gzip -9 -n >"$2"
	else
		(cd "$1" && find . -mindepth 1 | LC_ALL=C sort |
			cpio -o -H newc -R 0:0 --reproducible --quiet) >"$2"
	fi
}

# initrd-qemu-ga.img: the common tree + Debian's qemu-ga, its libraries and
# the dynamic loader at their host paths (/usr/sbin is /bin in the guest).
# Left uncompressed (~11 MB): gunzipping it costs ~0.25 s of boot under TCG.
if [[ -f "$IOBENCH_BINARY" ]]; then install -m 755 "$IOBENCH_BINARY" "$root/bin/nf-iobench"; fi
qroot="$tmp/root-qemu-ga"
cp -a "$root" "$qroot"
install -m 755 "$QEMU_GA" "$qroot$QEMU_GA"
for lib in "${qemu_ga_libs[@]}"; do
	mkdir -p "$qroot$(dirname "$lib")"
	cp -L "$lib" "$qroot$lib"
	chmod 755 "$qroot$lib"
done
install -m 755 "$GUEST_DIR/start-qemu-ga" "$qroot/etc/start-qemu-ga"
mkcpio "$qroot" "$tmp/initrd-qemu-ga.img"
rm -rf "$qroot"

# initrd.img: the common tree + our agent.
install -m 755 "$AGENT_BINARY" "$root/bin/neuroflow-agent"
install -m 755 "$GUEST_DIR/start-neuroflow-agent" "$root/etc/start-neuroflow-agent"
mkcpio "$root" "$tmp/initrd.img" gzip
rm -rf "$root"

# --- data-ext4.img: raw ext4 disk (label nfdata) mounted at /data -------------
# Fixed UUID, hash seed and creation time: the image is reproducible.
truncate -s 64M "$tmp/data-ext4.img"
E2FSPROGS_FAKE_TIME=1700000000 mkfs.ext4 -F -q -L nfdata \
	-U 4e455552-4f46-4c4f-5744-415441000001 \
	-E hash_seed=4e455552-4f46-4c4f-5744-415441000002 "$tmp/data-ext4.img" ||
	die "mkfs.ext4 failed to create data-ext4.img"

# --- demo.iso (BIOS El Torito via isolinux; also hybrid MBR for USB/disk) -----
iso="$tmp/iso"
mkdir -p "$iso/isolinux"
cp "$ISOLINUX_BIN" "$LDLINUX_C32" "$iso/isolinux/"
sed "s|@ISO_CMDLINE@|$ISO_CMDLINE|" "$GUEST_DIR/isolinux.cfg" >"$iso/isolinux/isolinux.cfg"
cp "$tmp/vmlinuz" "$tmp/initrd.img" "$iso/"
if ! xorriso_log=$(xorriso -as mkisofs -quiet -o "$tmp/demo.iso" -V NEUROFLOW_DEMO -r -J \
	-isohybrid-mbr "$ISOHYBRID_MBR" \
	-c isolinux/boot.cat -b isolinux/isolinux.bin \
	-no-emul-boot -boot-load-size 4 -boot-info-table \
	"$iso" 2>&1); then
	printf '%s\n' "$xorriso_log" >&2
	die "xorriso failed to create demo.iso"
fi
rm -rf "$iso"

# --- manifest ---------------------------------------------------------------
json_str() { # minimal JSON string escaping (backslash and double quote)
	local s=${1//\\/\\\\}
	printf '"%s"' "${s//\"/\\\"}"
}
{
	echo "{"
	echo "  \"hash\": $(json_str "$hash"),"
	echo "  \"kernelVersion\": $(json_str "$kver"),"
	echo "  \"kernelPackage\": $(json_str "${kernel_pkg:-}"),"
	echo "  \"kernelPackageVersion\": $(json_str "${kernel_pkg_version:-}"),"
	echo "  \"busyboxVersion\": $(json_str "$busybox_version"),"
	echo "  \"cmdline\": $(json_str "$KERNEL_CMDLINE"),"
	echo "  \"isoCmdline\": $(json_str "$ISO_CMDLINE"),"
	echo "  \"initrdQemuGa\": \"initrd-qemu-ga.img\","
	echo "  \"dataDisk\": \"data-ext4.img\","
	echo "  \"users\": { $(json_str "$TEST_USER"): $(json_str "$TEST_PASSWORD") },"
	echo "  \"qemuGuestAgentVersion\": $(json_str "$qemu_ga_version"),"
	echo "  \"files\": {"
	sep=,
	files=(vmlinux vmlinuz initrd.img initrd-qemu-ga.img demo.iso data-ext4.img)
	for i in "${!files[@]}"; do
		f=${files[$i]}
		((i == ${#files[@]} - 1)) && sep=
		echo "    $(json_str "$f"): $(json_str "$(sha256 "$tmp/$f")")$sep"
	done
	echo "  }"
	echo "}"
} >"$tmp/manifest.json"
chmod 755 "$tmp"
chmod 644 "$tmp"/*

# --- publish atomically -----------------------------------------------------
if [[ "$force" == 1 && -e "$out" ]]; then
	old=$(mktemp -d "$base/.old-$hash-XXXXXX")
	mv -T "$out" "$old/x" 2>/dev/null || true
	rm -rf "$old"
fi
if [[ -e "$out" && ! -f "$out/manifest.json" ]]; then
	log "removing incomplete $out"
	old=$(mktemp -d "$base/.old-$hash-XXXXXX")
	mv -T "$out" "$old/x" 2>/dev/null || true
	rm -rf "$old"
fi
if mv -T "$tmp" "$out" 2>/dev/null; then
	tmp=
	log "built $out in $((SECONDS - start_s)) s"
elif [[ -f "$out/manifest.json" ]]; then
	log "another process published $out first; using it"
else
	die "could not move $tmp to $out"
fi
echo "$out" >&3
exit 0
