import type { CloudInitInput, CloudInitView, CreateVmBody, EditVmBody, OnBoot, Vm } from './api';

/**
 * Autostart (onBoot) and cloud-init of a VM, as the create dialog and the VM page's "Startup and
 * cloud-init" dialog show them. Both apply at once (no pending change): autostart counts from the host's
 * next boot, and the guest reads the cloud-init seed at its next start.
 */

/** The fields of the dialogs; numbers as typed. */
export interface StartupForm {
  onBoot: boolean;
  /** '' (0) or 0-1000. */
  order: string;
  /** '' (0) or 0-600 seconds. */
  delaySec: string;
  cloudInit: boolean;
  hostname: string;
  /** One OpenSSH public key a line; empty lines are ignored. */
  sshKeys: string;
  /** Plain text as typed; sent only when not empty. */
  password: string;
  /** The edit dialog of a VM with a password set: keep it (sending no cloud-init while nothing else changed). */
  keepPassword: boolean;
}

export const DEFAULT_STARTUP: StartupForm = {
  onBoot: false,
  order: '0',
  delaySec: '0',
  cloudInit: false,
  hostname: '',
  sshKeys: '',
  password: '',
  keepPassword: false,
};

/** The keys of the textarea: one a line, trimmed, empty lines dropped. */
export function parseSshKeys(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter(Boolean);
}

/** A whole number from 0 to max, '' counting as 0; undefined when it is not one. */
function whole(s: string, max: number): number | undefined {
  const t = s.trim();
  if (!t) return 0;
  if (!/^\d+$/.test(t)) return undefined;
  const n = Number(t);
  return n <= max ? n : undefined;
}

/** What is wrong with the numbers as typed ('' when they will do); the API checks the rest. */
export function startupProblem(f: StartupForm): string {
  if (!f.onBoot) return '';
  if (whole(f.order, 1000) === undefined) return 'Order: a whole number from 0 to 1000.';
  if (whole(f.delaySec, 600) === undefined) return 'Delay: a whole number of seconds from 0 to 600.';
  return '';
}

function onBootOf(f: StartupForm): OnBoot {
  return { enabled: true, order: whole(f.order, 1000) ?? 0, delaySec: whole(f.delaySec, 600) ?? 0 };
}

function cloudInitOf(f: StartupForm): CloudInitInput {
  const c: CloudInitInput = {};
  if (f.hostname.trim()) c.hostname = f.hostname.trim();
  const keys = parseSshKeys(f.sshKeys);
  if (keys.length) c.sshKeys = keys;
  if (f.password) c.password = f.password;
  return c;
}

/** POST /vms: onBoot only when ticked, cloudInit only when ticked (empty: the defaults, host name = VM name). */
export function createStartupBody(f: StartupForm): Pick<CreateVmBody, 'onBoot' | 'cloudInit'> {
  const body: Pick<CreateVmBody, 'onBoot' | 'cloudInit'> = {};
  if (f.onBoot) body.onBoot = onBootOf(f);
  if (f.cloudInit) body.cloudInit = cloudInitOf(f);
  return body;
}

/** The edit dialog filled from the VM; the password field stays empty (the API never shows it). */
export function startupForm(vm: Vm): StartupForm {
  const c = vm.cloudInit;
  return {
    onBoot: !!vm.onBoot?.enabled,
    order: String(vm.onBoot?.order ?? 0),
    delaySec: String(vm.onBoot?.delaySec ?? 0),
    cloudInit: !!c,
    hostname: c?.hostname ?? '',
    sshKeys: (c?.sshKeys ?? []).join('\n'),
    password: '',
    keepPassword: !!c?.passwordSet,
  };
}

/**
 * The VM's cloud-init has a user-data or network-config document given through the API: the UI cannot
 * show it, so it cannot send it back either (a PATCH replaces the whole settings); it can only remove it.
 */
export function cloudInitLocked(vm: Vm): boolean {
  return !!vm.cloudInit && (vm.cloudInit.userData || vm.cloudInit.networkConfig);
}

/**
 * The cloud-init fields other than a typed password differ from the VM's (host name, keys, a new
 * cloud-init, or a password to be dropped).
 */
function cloudInitFieldsChanged(vm: Vm, f: StartupForm): boolean {
  const c = vm.cloudInit;
  if (!c) return true;
  if (f.hostname.trim() !== (c.hostname ?? '')) return true;
  const keys = parseSshKeys(f.sshKeys);
  const had = (c.sshKeys ?? []).map((k) => k.trim());
  if (keys.length !== had.length || keys.some((k, i) => k !== had[i])) return true;
  return c.passwordSet && !f.keepPassword;
}

/**
 * The password is kept only as a hash and a PATCH replaces the whole cloud-init: a change of the other
 * cloud-init fields while keeping the password needs it typed again.
 */
export function passwordNeeded(vm: Vm, f: StartupForm): boolean {
  return (
    f.cloudInit &&
    !!vm.cloudInit?.passwordSet &&
    f.keepPassword &&
    !f.password &&
    !cloudInitLocked(vm) &&
    cloudInitFieldsChanged(vm, f)
  );
}

/**
 * PATCH /vms/{id}: onBoot when it changed ({enabled: false} turns it off); cloudInit null when unticked,
 * the whole settings when a field changed or a password was typed, nothing otherwise (so a kept password
 * stays). A locked cloud-init (see cloudInitLocked) is only ever removed.
 */
export function startupEditBody(vm: Vm, f: StartupForm): Pick<EditVmBody, 'onBoot' | 'cloudInit'> {
  const body: Pick<EditVmBody, 'onBoot' | 'cloudInit'> = {};
  const had = vm.onBoot?.enabled ? vm.onBoot : undefined;
  if (f.onBoot) {
    const want = onBootOf(f);
    if (!had || had.order !== want.order || had.delaySec !== want.delaySec) body.onBoot = want;
  } else if (had) body.onBoot = { enabled: false };
  if (!f.cloudInit) {
    if (vm.cloudInit) body.cloudInit = null;
  } else if (!cloudInitLocked(vm) && (f.password || cloudInitFieldsChanged(vm, f)))
    body.cloudInit = cloudInitOf(f);
  return body;
}

/** "order 1, then 30 s", "order 0" or "off". */
export function onBootLine(onBoot: OnBoot | undefined): string {
  if (!onBoot?.enabled) return 'off';
  return `order ${onBoot.order}${onBoot.delaySec ? `, then ${onBoot.delaySec} s` : ''}`;
}

const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** "host name web-01, 2 SSH keys, password set", "on (defaults: …)" or "off". */
export function cloudInitLine(c: CloudInitView | undefined): string {
  if (!c) return 'off';
  const parts = [
    c.hostname && `host name ${c.hostname}`,
    c.sshKeys?.length && plural(c.sshKeys.length, 'SSH key'),
    c.passwordSet && 'password set',
    c.userData && 'own user-data',
    c.networkConfig && 'network config',
  ].filter(Boolean);
  return parts.length ? parts.join(', ') : "on (defaults: the VM's name as host name, DHCP)";
}
