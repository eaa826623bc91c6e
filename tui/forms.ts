/**
 * The console's forms without drawing: field validators, a form's editing state (focus, typing,
 * validation as you type, whether OK is enabled) and the functions that turn filled-in forms into the
 * appliance config. The blessed views only render a `FormState` and feed it keys.
 */
import { type ApplianceConfig, defaultConfig, parseConfig } from '../src/appliance/config';
import {
  cidrNetworkText,
  ipv4InSubnet,
  ipv4ToInt,
  isIpv4,
  parseIpv4Cidr,
  unusableIpv4,
} from '../src/appliance/network';
import { parseJoinToken } from '../src/cluster/token';
import { NfError } from '../src/errors';

/** An error message, or undefined when the value is fine. */
export type Problem = string | undefined;

// ---------------------------------------------------------------------------------------------------------
// Validators

export function validateHostname(v: string): Problem {
  if (v === '') return 'required';
  if (v.length > 63) return 'up to 63 characters';
  if (/[A-Z]/.test(v)) return 'lowercase letters only';
  if (!/^[a-z0-9-]+$/.test(v)) return 'only letters a-z, digits and -';
  if (v.startsWith('-') || v.endsWith('-')) return 'cannot start or end with -';
  return undefined;
}

export function validateIpv4(v: string): Problem {
  if (v === '') return 'required';
  if (!isIpv4(v)) return 'not an IPv4 address (e.g. 192.168.1.1)';
  return undefined;
}

/** The host's own address with its prefix, e.g. 192.168.1.10/24. */
export function validateCidr(v: string): Problem {
  if (v === '') return 'required (e.g. 192.168.1.10/24)';
  const slash = v.indexOf('/');
  const addr = slash < 0 ? v : v.slice(0, slash);
  if (!isIpv4(addr)) return 'not an IPv4 address (e.g. 192.168.1.10/24)';
  if (slash < 0) return 'add the prefix length, e.g. /24';
  const c = parseIpv4Cidr(v);
  if (!c) return 'the prefix length is 1 to 32';
  const unusable = unusableIpv4(addr);
  if (unusable) return unusable;
  const n = ipv4ToInt(addr)!;
  if (c.prefix <= 30 && n === c.network) return `${addr} is the network address of ${cidrNetworkText(c)}`;
  if (c.prefix <= 30 && n === c.broadcast) return `${addr} is the broadcast address of ${cidrNetworkText(c)}`;
  return undefined;
}

/** The default gateway: an IPv4 address in the address's subnet, not the address itself. */
export function validateGateway(gw: string, cidr: string): Problem {
  const p = validateIpv4(gw);
  if (p) return p;
  const unusable = unusableIpv4(gw);
  if (unusable) return unusable;
  if (validateCidr(cidr)) return undefined; // the address field shows its own error
  const c = parseIpv4Cidr(cidr)!;
  if (!ipv4InSubnet(gw, cidr)) return `not in the address's subnet ${cidrNetworkText(c)}`;
  if (gw === c.address) return "the gateway cannot be the host's own address";
  const n = ipv4ToInt(gw)!;
  if (c.prefix <= 30 && (n === c.network || n === c.broadcast))
    return `${gw} is the ${n === c.network ? 'network' : 'broadcast'} address of ${cidrNetworkText(c)}`;
  return undefined;
}

/** "1.1.1.1, 9.9.9.9" or "1.1.1.1 9.9.9.9" into a list (no validation). */
export function splitDns(v: string): string[] {
  return v.split(/[\s,;]+/).filter(Boolean);
}

/** Up to three DNS servers, separated by commas or spaces. */
export function validateDnsList(v: string, required: boolean): Problem {
  const list = splitDns(v);
  if (list.length === 0) return required ? 'required: one to three DNS servers' : undefined;
  if (list.length > 3) return 'up to three DNS servers';
  for (const d of list) if (!isIpv4(d)) return `${d} is not an IPv4 address`;
  if (new Set(list).size !== list.length) return 'a DNS server is listed twice';
  return undefined;
}

/** 0 (or empty) for untagged, 1-4094 for an 802.1Q VLAN. */
export function validateVlan(v: string): Problem {
  if (v.trim() === '') return undefined;
  if (!/^\d+$/.test(v.trim())) return 'a number: 0 (none) to 4094';
  const n = Number(v.trim());
  if (n > 4094) return 'a VLAN ID is 0 (none) to 4094';
  return undefined;
}

export function validateInterface(v: string): Problem {
  if (v === '') return 'required (e.g. eth0)';
  if (!/^[a-zA-Z0-9_-]{1,15}$/.test(v)) return 'an interface name such as eth0';
  return undefined;
}

export const PASSWORD_MIN = 8;
export const PASSWORD_MAX = 128;

/** At least 8 characters, at least two kinds (lowercase, uppercase, digits, others), no control characters. */
export function validatePassword(v: string): Problem {
  if (v === '') return 'required';
  if (v.length < PASSWORD_MIN) return `at least ${PASSWORD_MIN} characters`;
  if (v.length > PASSWORD_MAX) return `up to ${PASSWORD_MAX} characters`;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it rejects
  if (/[\x00-\x1f\x7f]/.test(v)) return 'no control characters';
  const kinds = [/[a-z]/, /[A-Z]/, /[0-9]/, /[^a-zA-Z0-9]/].filter((r) => r.test(v)).length;
  if (kinds < 2) return 'mix at least two of: lowercase, uppercase, digits, symbols';
  return undefined;
}

export function validateConfirmation(password: string, confirm: string): Problem {
  if (confirm === '') return 'type the password again';
  if (confirm !== password) return 'the passwords do not match';
  return undefined;
}

/** An optional cluster name: like a host name, up to 43 characters (it names the cluster CA). */
export function validateClusterName(v: string): Problem {
  if (v === '') return undefined;
  if (v.length > 43) return 'up to 43 characters';
  return validateHostname(v);
}

/** A pasted join token: decoded and checked here (malformed, expired) before anything is sent. */
export function validateJoinToken(v: string, now = new Date()): Problem {
  const t = v.replace(/\s+/g, '');
  if (t === '') return 'paste the token from `neuroflow cluster token create` on a controller';
  try {
    parseJoinToken(t, now);
    return undefined;
  } catch (err) {
    return err instanceof NfError ? err.message : String(err);
  }
}

export function validateMinutes(v: string): Problem {
  if (!/^\d+$/.test(v.trim())) return 'minutes: 1 to 1440';
  const n = Number(v);
  if (n < 1 || n > 1440) return 'minutes: 1 to 1440 (a day)';
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Form state

export type Values = Record<string, string>;

export interface FieldSpec {
  key: string;
  label: string;
  kind: 'text' | 'password' | 'choice';
  choices?: string[];
  /** Shown after the value when the field is valid (e.g. "empty: from DHCP"). */
  hint?: string | ((values: Values) => string | undefined);
  maxLength?: number;
  validate?: (value: string, values: Values) => Problem;
  visible?: (values: Values) => boolean;
}

export interface FormSpec {
  title: string;
  /** Lines above the fields. */
  intro?: string[];
  fields: FieldSpec[];
  okLabel?: string;
}

/** The two buttons after the fields. */
export type Focus = { kind: 'field'; key: string } | { kind: 'button'; button: 'ok' | 'cancel' };

export type EnterResult = 'submit' | 'cancel' | 'invalid';

export class FormState {
  values: Values;
  /** Fields that were edited, or all of them after a refused submit: only these show errors. */
  readonly touched = new Set<string>();
  private index = 0;

  constructor(
    readonly spec: FormSpec,
    initial: Values = {},
  ) {
    this.values = {};
    for (const f of spec.fields) this.values[f.key] = initial[f.key] ?? f.choices?.[0] ?? '';
  }

  visibleFields(): FieldSpec[] {
    return this.spec.fields.filter((f) => !f.visible || f.visible(this.values));
  }

  private stops(): Focus[] {
    return [
      ...this.visibleFields().map((f) => ({ kind: 'field', key: f.key }) as Focus),
      { kind: 'button', button: 'ok' },
      { kind: 'button', button: 'cancel' },
    ];
  }

  get focus(): Focus {
    const s = this.stops();
    return s[Math.min(this.index, s.length - 1)]!;
  }

  focusedField(): FieldSpec | undefined {
    const f = this.focus;
    return f.kind === 'field' ? this.spec.fields.find((x) => x.key === f.key) : undefined;
  }

  focusKey(key: string): void {
    const i = this.stops().findIndex((s) => s.kind === 'field' && s.key === key);
    if (i >= 0) this.index = i;
  }

  /** Every visible field's problem (hidden fields are not checked). */
  errors(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const f of this.visibleFields()) {
      const p = f.validate?.(this.values[f.key] ?? '', this.values);
      if (p) out[f.key] = p;
    }
    return out;
  }

  /** What the form shows next to a field: errors only for touched fields. */
  shownError(key: string): Problem {
    return this.touched.has(key) ? this.errors()[key] : undefined;
  }

  get valid(): boolean {
    return Object.keys(this.errors()).length === 0;
  }

  next(): void {
    this.index = (Math.min(this.index, this.stops().length - 1) + 1) % this.stops().length;
  }

  prev(): void {
    const n = this.stops().length;
    this.index = (Math.min(this.index, n - 1) + n - 1) % n;
  }

  /** Printable text typed (or pasted) into the focused text field; space cycles a choice field. */
  type(text: string): void {
    const f = this.focusedField();
    if (!f) return;
    if (f.kind === 'choice') {
      if (text === ' ') this.cycle(1);
      return;
    }
    // biome-ignore lint/suspicious/noControlCharactersInRegex: typed control characters are dropped
    const clean = text.replace(/[\x00-\x1f\x7f]/g, '');
    if (!clean) return;
    const max = f.maxLength ?? 256;
    this.values[f.key] = ((this.values[f.key] ?? '') + clean).slice(0, max);
    this.touched.add(f.key);
  }

  backspace(): void {
    const f = this.focusedField();
    if (!f || f.kind === 'choice') return;
    this.values[f.key] = (this.values[f.key] ?? '').slice(0, -1);
    this.touched.add(f.key);
  }

  /** Ctrl-U: empties the focused text field. */
  clear(): void {
    const f = this.focusedField();
    if (!f || f.kind === 'choice') return;
    this.values[f.key] = '';
    this.touched.add(f.key);
  }

  /** Left/right: the next or previous choice, or the other button. */
  cycle(dir: 1 | -1): void {
    const focus = this.focus;
    if (focus.kind === 'button') {
      this.index = this.stops().findIndex(
        (s) => s.kind === 'button' && s.button === (focus.button === 'ok' ? 'cancel' : 'ok'),
      );
      return;
    }
    const f = this.focusedField();
    if (!f?.choices) return;
    const i = f.choices.indexOf(this.values[f.key] ?? '');
    this.values[f.key] = f.choices[(i + dir + f.choices.length) % f.choices.length]!;
    this.touched.add(f.key);
  }

  /**
   * Enter: OK (from a field or the OK button) when the form is valid; otherwise every error shows and
   * the focus goes to the first bad field. Enter on Cancel cancels.
   */
  enter(): EnterResult {
    const focus = this.focus;
    if (focus.kind === 'button' && focus.button === 'cancel') return 'cancel';
    if (this.valid) return 'submit';
    for (const f of this.visibleFields()) this.touched.add(f.key);
    const bad = this.visibleFields().find((f) => this.errors()[f.key]);
    if (bad) this.focusKey(bad.key);
    return 'invalid';
  }
}

// ---------------------------------------------------------------------------------------------------------
// The forms and what they do to the config

export const MODE_CHOICES = ['DHCP', 'static'];

const isStatic = (v: Values) => v.mode === 'static';

export const networkForm: FormSpec = {
  title: 'Configure Management Network',
  intro: ['The management network carries the API and web UI (port 8006) and the cluster traffic.'],
  fields: [
    { key: 'hostname', label: 'Host name', kind: 'text', maxLength: 63, validate: validateHostname },
    { key: 'mode', label: 'IPv4 configuration', kind: 'choice', choices: MODE_CHOICES },
    {
      key: 'address',
      label: 'IPv4 address/prefix',
      kind: 'text',
      maxLength: 18,
      visible: isStatic,
      validate: validateCidr,
    },
    {
      key: 'gateway',
      label: 'Default gateway',
      kind: 'text',
      maxLength: 15,
      visible: isStatic,
      validate: (v, all) => validateGateway(v, all.address ?? ''),
    },
    {
      key: 'dns',
      label: 'DNS servers',
      kind: 'text',
      maxLength: 47,
      hint: (v) => (isStatic(v) ? 'up to 3, comma-separated' : 'empty: from DHCP'),
      validate: (v, all) => validateDnsList(v, isStatic(all)),
    },
    {
      key: 'vlan',
      label: 'VLAN ID',
      kind: 'text',
      maxLength: 4,
      hint: '0: untagged',
      validate: validateVlan,
    },
    { key: 'interface', label: 'Network adapter', kind: 'text', maxLength: 15, validate: validateInterface },
  ],
};

/** The network form filled from a config (or from defaults on a host not configured yet). */
export function networkValues(cfg: ApplianceConfig | undefined): Values {
  const c = cfg ?? defaultConfig();
  return {
    hostname: c.hostname,
    mode: c.network.mode === 'static' ? 'static' : 'DHCP',
    address: c.network.address ?? '',
    gateway: c.network.gateway ?? '',
    dns: c.network.dns.join(', '),
    vlan: String(c.network.vlan),
    interface: c.network.interface,
  };
}

function fail(spec: FormSpec, values: Values): never {
  const s = new FormState(spec, values);
  const [key, msg] = Object.entries(s.errors())[0]!;
  const label = spec.fields.find((f) => f.key === key)?.label ?? key;
  throw new NfError('validation_failed', `${label}: ${msg}`);
}

/**
 * A filled-in network form on top of the current config (or a new one). In DHCP mode an earlier static
 * address and gateway are kept (for switching back) when they are still valid. Throws for invalid input.
 */
export function configFromNetworkForm(values: Values, base: ApplianceConfig | undefined): ApplianceConfig {
  if (!new FormState(networkForm, values).valid) fail(networkForm, values);
  const c = structuredClone(base ?? defaultConfig());
  const staticMode = values.mode === 'static';
  const address = values.address ?? '';
  const gateway = values.gateway ?? '';
  const keepAddress = staticMode || !validateCidr(address);
  const keepGateway = keepAddress && (staticMode || !validateGateway(gateway, address));
  c.hostname = values.hostname!;
  c.network = {
    interface: values.interface!,
    mode: staticMode ? 'static' : 'dhcp',
    ...(keepAddress && address ? { address } : {}),
    ...(keepGateway && gateway ? { gateway } : {}),
    dns: splitDns(values.dns ?? ''),
    vlan: Number((values.vlan ?? '').trim() || '0'),
  };
  return parseConfig(c);
}

export const passwordForm: FormSpec = {
  title: 'Configure Root Password',
  intro: [
    'The password of the Linux root account (console, SSH) and of the web UI login "root".',
    `At least ${PASSWORD_MIN} characters, mixing two of: lowercase, uppercase, digits, symbols.`,
  ],
  fields: [
    {
      key: 'password',
      label: 'New password',
      kind: 'password',
      maxLength: PASSWORD_MAX,
      validate: validatePassword,
    },
    {
      key: 'confirm',
      label: 'Confirm password',
      kind: 'password',
      maxLength: PASSWORD_MAX,
      validate: (v, all) => validateConfirmation(all.password ?? '', v),
    },
  ],
};

/** The config with new root password hashes (from hashRootPassword). */
export function configWithPassword(
  base: ApplianceConfig | undefined,
  hashes: NonNullable<ApplianceConfig['rootPassword']>,
): ApplianceConfig {
  return parseConfig({ ...structuredClone(base ?? defaultConfig()), rootPassword: hashes });
}

/** Checks the password form and returns the password to hash; throws for invalid input. */
export function passwordFromForm(values: Values): string {
  if (!new FormState(passwordForm, values).valid) fail(passwordForm, values);
  return values.password!;
}

export const createClusterForm: FormSpec = {
  title: 'Create a Cluster',
  intro: [
    'This host founds a new cluster: its own certificate authority, an etcd member, the API on 8006.',
    'Other hosts join it with a token from `neuroflow cluster token create` (or the web UI).',
  ],
  fields: [
    {
      key: 'name',
      label: 'Cluster name',
      kind: 'text',
      maxLength: 43,
      hint: 'optional (default: HOST-cluster)',
      validate: validateClusterName,
    },
  ],
  okLabel: 'Create',
};

export function configForCreate(base: ApplianceConfig | undefined, values: Values): ApplianceConfig {
  if (!new FormState(createClusterForm, values).valid) fail(createClusterForm, values);
  const name = values.name ?? '';
  return parseConfig({
    ...structuredClone(base ?? defaultConfig()),
    cluster: { mode: 'create', ...(name ? { name } : {}) },
  });
}

export const joinClusterForm: FormSpec = {
  title: 'Join a Cluster',
  intro: [
    'On a controller: `neuroflow cluster token create --ttl 1h` (or the web UI), then paste the token here.',
    'The first three hosts of a cluster become controllers, later ones workers.',
  ],
  fields: [
    {
      key: 'token',
      label: 'Join token',
      kind: 'text',
      maxLength: 8192,
      validate: (v) => validateJoinToken(v),
    },
  ],
  okLabel: 'Join',
};

export function configForJoin(base: ApplianceConfig | undefined, values: Values): ApplianceConfig {
  if (!new FormState(joinClusterForm, values).valid) fail(joinClusterForm, values);
  return parseConfig({
    ...structuredClone(base ?? defaultConfig()),
    cluster: { mode: 'join', token: (values.token ?? '').replace(/\s+/g, '') },
  });
}

/** After a successful join the token is dropped: serve carries on with the cluster in the data dir. */
export function configAfterJoin(cfg: ApplianceConfig): ApplianceConfig {
  return parseConfig({ ...structuredClone(cfg), cluster: { mode: 'member' } });
}

/** After a refused join: back to no cluster, so the supervisor does not retry a used-up token. */
export function configAfterFailedJoin(cfg: ApplianceConfig): ApplianceConfig {
  return parseConfig({ ...structuredClone(cfg), cluster: { mode: 'none' } });
}

export const sshForm: FormSpec = {
  title: 'Enable SSH',
  intro: ['SSH (root login with the root password) for a limited time; it turns itself off after that.'],
  fields: [{ key: 'minutes', label: 'Minutes', kind: 'text', maxLength: 4, validate: validateMinutes }],
  okLabel: 'Enable',
};

/** SSH on until now + minutes, or off (null). */
export function configWithSsh(
  base: ApplianceConfig | undefined,
  minutes: number | null,
  now = new Date(),
): ApplianceConfig {
  const enabledUntil = minutes === null ? null : new Date(now.getTime() + minutes * 60_000).toISOString();
  return parseConfig({ ...structuredClone(base ?? defaultConfig()), ssh: { enabledUntil } });
}

export const loginForm: FormSpec = {
  title: 'Authentication Required',
  intro: ['Enter the root password of this host.'],
  fields: [{ key: 'password', label: 'Password', kind: 'password', maxLength: PASSWORD_MAX }],
  okLabel: 'Log in',
};
