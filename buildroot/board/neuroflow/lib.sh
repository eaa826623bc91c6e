# shellcheck shell=bash
# Helpers shared by post-build.sh and post-image.sh (sourced, bash).

log() { printf '%s: %s\n' "${NF_SCRIPT:-neuroflow}" "$*" >&2; }
die() {
	printf '%s: error: %s\n' "${NF_SCRIPT:-neuroflow}" "$*" >&2
	exit 1
}

# The kernel command line of every appliance boot: the same as iso/build.sh's CMDLINE (the test
# scripts/buildroot-tree.test.ts compares them).
# shellcheck disable=SC2034 # used by the scripts that source this file
NF_CMDLINE="console=tty0 console=ttyS0,115200n8 quiet panic=30 cryptomgr.notests"

# nf_tool NAME: a host tool, Buildroot's own first ($HOST_DIR), then the build machine's.
nf_tool() {
	local d
	for d in "${HOST_DIR:-}/bin" "${HOST_DIR:-}/sbin" "${HOST_DIR:-}/usr/bin" "${HOST_DIR:-}/usr/sbin"; do
		if [[ -n "${HOST_DIR:-}" && -x "$d/$1" ]]; then
			echo "$d/$1"
			return 0
		fi
	done
	command -v "$1" 2>/dev/null || die "host tool '$1' not found (Buildroot builds it with the defconfig's BR2_PACKAGE_HOST_* options)"
}

# nf_readelf: the cross readelf of the Buildroot toolchain, else the build machine's.
nf_readelf() {
	local r
	for r in "${HOST_DIR:-/nonexistent}"/bin/*-readelf; do
		if [[ -x "$r" ]]; then
			echo "$r"
			return 0
		fi
	done
	command -v readelf 2>/dev/null || die "readelf not found"
}

# nf_kernel_release TARGET_DIR: the release of the kernel whose modules are installed, else the one
# of Buildroot's kernel build tree, else nothing.
nf_kernel_release() {
	local target=$1 d
	for d in "$target"/lib/modules/*/; do
		if [[ -d "$d" ]]; then
			basename "$d"
			return 0
		fi
	done
	for d in "${BUILD_DIR:-/nonexistent}"/linux-*/include/config/kernel.release; do
		if [[ -f "$d" ]]; then
			cat "$d"
			return 0
		fi
	done
}

# nf_modules_closure MODDIR LISTFILE...: the modules named in the lists (one a line, # comments)
# that exist as files in MODDIR, with their dependencies from MODDIR/modules.dep, in load order,
# as paths relative to MODDIR. Built-in or unknown names print nothing (the Buildroot kernel has
# the appliance's drivers built in, so this is usually empty).
nf_modules_closure() {
	local moddir=$1
	shift
	[[ -f "$moddir/modules.dep" ]] || return 0
	local -A path=() deps=() seen=()
	local line p n m
	_nf_modname() {
		local x=${1##*/}
		x=${x%%.ko*}
		echo "${x//-/_}"
	}
	while IFS= read -r line; do
		p=${line%%:*}
		n=$(_nf_modname "$p")
		path[$n]=$p
		deps[$n]=${line#*:}
	done <"$moddir/modules.dep"
	_nf_visit() {
		local n=$1 d
		[[ -n "${seen[$n]:-}" ]] && return 0
		seen[$n]=1
		[[ -n "${path[$n]:-}" ]] || return 0
		for d in ${deps[$n]}; do _nf_visit "$(_nf_modname "$d")"; done
		echo "${path[$n]}"
	}
	while IFS= read -r m; do
		m=${m%%#*}
		m=${m//[[:space:]]/}
		if [[ -n "$m" ]]; then _nf_visit "${m//-/_}"; fi
	done < <(cat "$@")
}

# nf_copy_module MODDIR REL DESTROOT KREL: a module, uncompressed, at DESTROOT/lib/modules/KREL/REL.ko
nf_copy_module() {
	local src="$1/$2" dst="$3/lib/modules/$4/${2%%.ko*}.ko"
	mkdir -p "$(dirname "$dst")"
	case "$src" in
	*.ko) cp "$src" "$dst" ;;
	*.ko.xz) xz -dc "$src" >"$dst" ;;
	*.ko.gz) gzip -dc "$src" >"$dst" ;;
	*.ko.zst) zstd -dcq "$src" >"$dst" ;;
	*) die "unsupported module file $src" ;;
	esac
}
