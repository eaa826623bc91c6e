# shellcheck shell=sh
# Helpers shared by the guest scripts.

# say MESSAGE: write one line to every active console and to ttyS0.
say() {
	_targets=$(cat /sys/class/tty/console/active 2>/dev/null)
	case " $_targets " in
	*" ttyS0 "*) ;;
	*) [ -c /dev/ttyS0 ] && _targets="$_targets ttyS0" ;;
	esac
	for _t in $_targets; do
		echo "$*" >"/dev/$_t" 2>/dev/null
	done
}

# unmount_disks: sync, then unmount (or remount read-only) every filesystem
# mounted from a block device, so a power-off leaves disks clean.
unmount_disks() {
	sync
	# shellcheck disable=SC2034
	grep '^/dev/' /proc/mounts | sort -r -k2 | while read -r _dev _mnt _rest; do
		umount "$_mnt" 2>/dev/null || mount -o remount,ro "$_mnt" 2>/dev/null
	done
	sync
}

# wait_booted: wait (up to 2 s) until the boot banner has been printed, so
# that programs started by init at the same time do not delay it.
wait_booted() {
	_i=0
	while [ ! -e /run/booted ] && [ "$_i" -lt 100 ]; do
		usleep 20000
		_i=$((_i + 1))
	done
}
