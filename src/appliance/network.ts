/**
 * The management network of the appliance: IPv4 arithmetic for the validators, `planNetwork` (the config
 * turned into argv arrays, never shell strings) and `applyNetwork` (runs them). Both the boot step and the
 * console TUI use it.
 *
 * A plan step is an argv array. Steps whose first element starts with `@` are done in process:
 *   ['@write', PATH, CONTENTS, MODE]   write a file atomically (MODE octal, e.g. '0644')
 *   ['@kill-pidfile', PATH]            SIGTERM the process in a pidfile (a DHCP client left running)
 */
import { readFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { writeFileAtomic } from '../util/fs';
import { pidAlive, readPidfile } from '../util/proc';
import type { ApplianceConfig, NetworkConfig } from './config';
import { type Runner, realRunner } from './system';

// ---------------------------------------------------------------------------------------------------------
// IPv4 arithmetic

const OCTET = '(25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

/** A dotted quad without leading zeros (010.0.0.1 is ambiguous: octal to some tools). */
export function isIpv4(v: string): boolean {
  return IPV4.test(v);
}

/** The address as an unsigned 32-bit number; undefined when it is not a dotted quad. */
export function ipv4ToInt(v: string): number | undefined {
  if (!isIpv4(v)) return undefined;
  return v.split('.').reduce((n, o) => n * 256 + Number(o), 0);
}

export function intToIpv4(n: number): string {
  return [24, 16, 8, 0].map((s) => (n >>> s) & 255).join('.');
}

export interface Ipv4Cidr {
  address: string;
  prefix: number;
  /** Network and broadcast addresses as numbers. */
  network: number;
  broadcast: number;
}

/** Parses `a.b.c.d/len` (len 1-32); undefined when malformed. */
export function parseIpv4Cidr(v: string): Ipv4Cidr | undefined {
  const m = /^([0-9.]+)\/(\d{1,2})$/.exec(v);
  if (!m) return undefined;
  const addr = ipv4ToInt(m[1]!);
  const prefix = Number(m[2]);
  if (addr === undefined || prefix < 1 || prefix > 32) return undefined;
  const mask = (0xffffffff << (32 - prefix)) >>> 0;
  const network = (addr & mask) >>> 0;
  const broadcast = (network | (~mask >>> 0)) >>> 0;
  return { address: m[1]!, prefix, network, broadcast };
}

export function cidrNetworkText(c: Ipv4Cidr): string {
  return `${intToIpv4(c.network)}/${c.prefix}`;
}

/** True when `ip` lies in the subnet of `cidr` (network and broadcast addresses included). */
export function ipv4InSubnet(ip: string, cidr: string): boolean {
  const c = parseIpv4Cidr(cidr);
  const n = ipv4ToInt(ip);
  return !!c && n !== undefined && n >= c.network && n <= c.broadcast;
}

/** Why an address cannot be a host's own or a gateway (0/8, loopback, multicast, reserved); else undefined. */
export function unusableIpv4(ip: string): string | undefined {
  const n = ipv4ToInt(ip);
  if (n === undefined) return 'not an IPv4 address';
  const first = n >>> 24;
  if (first === 0) return `${ip} is not usable (0.0.0.0/8)`;
  if (first === 127) return `${ip} is a loopback address`;
  if (first >= 224 && first <= 239) return `${ip} is a multicast address`;
  if (first >= 240) return `${ip} is a reserved address`;
  return undefined;
}

// ---------------------------------------------------------------------------------------------------------
// Live state (`ip -j addr`, `ip -j link`)

export interface LiveInterface {
  name: string;
  up: boolean;
  /** IPv4 addresses with prefix, e.g. 192.168.1.10/24. */
  ipv4: string[];
  /** For a VLAN link (`eth0.5`): the parent link, when `ip` says. */
  link?: string;
}

/** Parses `ip -j addr show` (or `ip -j link show`) output; junk gives []. */
export function parseIpJson(json: string): LiveInterface[] {
  let raw: unknown;
  try {
    raw = JSON.parse(json);
  } catch {
    return [];
  }
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((e) => {
    if (!e || typeof e !== 'object' || typeof (e as { ifname?: unknown }).ifname !== 'string') return [];
    const o = e as {
      ifname: string;
      flags?: string[];
      operstate?: string;
      link?: string;
      addr_info?: { family?: string; local?: string; prefixlen?: number }[];
    };
    const ipv4 = (o.addr_info ?? [])
      .filter((a) => a.family === 'inet' && typeof a.local === 'string')
      .map((a) => `${a.local}/${a.prefixlen ?? 32}`);
    const up = o.operstate === 'UP' || (o.flags ?? []).includes('UP');
    return [{ name: o.ifname, up, ipv4, ...(o.link ? { link: o.link } : {}) }];
  });
}

/** The interface that carries the management address: eth0, or eth0.VLAN when tagged. */
export function managementInterface(net: NetworkConfig): string {
  return net.vlan > 0 ? `${net.interface}.${net.vlan}` : net.interface;
}

// ---------------------------------------------------------------------------------------------------------
// The plan

/** Where a plan reads and writes: `/` on the appliance, a scratch directory in tests and dry runs. */
export interface NetworkPlanOptions {
  root?: string;
  /** Links that exist now (`ip -j link`): stale VLAN links of the interface are deleted, a wanted one kept. */
  existingLinks?: string[];
}

export const udhcpcPidfile = (root = '/') => join(root, 'run', 'neuroflow', 'udhcpc.pid');
export const udhcpcScriptPath = (root = '/') => join(root, 'run', 'neuroflow', 'udhcpc.script');
export const resolvConfPath = (root = '/') => join(root, 'etc', 'resolv.conf');

/** /etc/resolv.conf for a list of name servers. */
export function resolvConf(dns: string[]): string {
  return `# written by NeuroFlow (appliance network config)\n${dns.map((d) => `nameserver ${d}\n`).join('')}`;
}

/**
 * The script busybox udhcpc calls on lease events (deconfig, bound, renew). It sets the address, the
 * default route and resolv.conf; configured DNS servers, when given, win over the DHCP server's.
 * Every value put into it has been validated (IPv4 addresses, paths made here).
 */
export function udhcpcScript(dns: string[], root = '/'): string {
  const resolv = resolvConfPath(root);
  const servers = dns.length > 0 ? `"${dns.join(' ')}"` : '"$dns"';
  return `#!/bin/sh
# Written by NeuroFlow (planNetwork): busybox udhcpc runs it with deconfig|bound|renew|leasefail|nak.
servers=${servers}
case "$1" in
  deconfig)
    ip -4 addr flush dev "$interface"
    ip link set dev "$interface" up
    ;;
  bound|renew)
    ip -4 addr flush dev "$interface"
    ip addr add "$ip/\${mask:-24}" dev "$interface"
    if [ -n "$router" ]; then
      ip route del default dev "$interface" 2>/dev/null
      for r in $router; do ip route add default via "$r" dev "$interface"; break; done
    fi
    {
      echo "# written by NeuroFlow (DHCP lease on $interface)"
      [ -n "$domain" ] && echo "search $domain"
      for s in $servers; do echo "nameserver $s"; done
    } > "${resolv}.tmp" && mv "${resolv}.tmp" "${resolv}"
    ;;
esac
exit 0
`;
}

/**
 * The steps that put the management network into the state the config says, as argv arrays (never shell
 * strings): links up, an optional 802.1Q link (`ip link add link eth0 name eth0.N type vlan id N`), then
 * either a static address, default route and resolv.conf, or busybox udhcpc with our script.
 */
export function planNetwork(cfg: ApplianceConfig, opts: NetworkPlanOptions = {}): string[][] {
  const root = opts.root ?? '/';
  const net = cfg.network;
  const dev = managementInterface(net);
  const existing = new Set(opts.existingLinks ?? []);
  const steps: string[][] = [];
  // A DHCP client from an earlier config would fight a static address (or run twice).
  steps.push(['@kill-pidfile', udhcpcPidfile(root)]);
  steps.push(['ip', 'link', 'set', 'dev', 'lo', 'up']);
  steps.push(['ip', 'link', 'set', 'dev', net.interface, 'up']);
  // VLAN links of this interface that the config no longer wants (their addresses go with them).
  for (const name of [...existing].sort()) {
    if (name.startsWith(`${net.interface}.`) && name !== dev)
      steps.push(['ip', 'link', 'delete', 'dev', name]);
  }
  if (net.vlan > 0) {
    // The untagged interface keeps no address of its own.
    steps.push(['ip', '-4', 'addr', 'flush', 'dev', net.interface]);
    if (!existing.has(dev)) {
      steps.push([
        'ip',
        'link',
        'add',
        'link',
        net.interface,
        'name',
        dev,
        'type',
        'vlan',
        'id',
        String(net.vlan),
      ]);
    }
    steps.push(['ip', 'link', 'set', 'dev', dev, 'up']);
  }
  steps.push(['ip', '-4', 'addr', 'flush', 'dev', dev]);
  if (net.mode === 'static') {
    steps.push(['ip', 'addr', 'add', net.address!, 'dev', dev]);
    if (net.gateway) steps.push(['ip', 'route', 'replace', 'default', 'via', net.gateway, 'dev', dev]);
    steps.push(['@write', resolvConfPath(root), resolvConf(net.dns), '0644']);
  } else {
    steps.push(['@write', udhcpcScriptPath(root), udhcpcScript(net.dns, root), '0755']);
    steps.push([
      'udhcpc',
      '-i',
      dev,
      '-s',
      udhcpcScriptPath(root),
      '-p',
      udhcpcPidfile(root),
      '-x',
      `hostname:${cfg.hostname}`,
      // Try for ~15 s in the foreground, then keep trying (and renewing) in the background.
      '-t',
      '5',
      '-T',
      '3',
      '-b',
    ]);
  }
  return steps;
}

export interface StepResult {
  argv: string[];
  ok: boolean;
  /** stderr (or why an in-process step failed), trimmed. */
  error?: string;
}

/**
 * Runs a plan. External commands go through the runner (a dry-run runner logs them); `@` steps are done
 * here, under `root`. Carries on past a failed step (a missing VLAN module should not leave the host
 * without its address) and reports every step.
 */
export async function runPlan(steps: string[][], runner: Runner): Promise<StepResult[]> {
  const results: StepResult[] = [];
  for (const argv of steps) {
    const [cmd, ...args] = argv;
    try {
      if (cmd === '@write') {
        const [path, contents, mode] = args as [string, string, string];
        await writeFileAtomic(path, contents, Number.parseInt(mode, 8));
        await runner.note(`wrote ${path}`);
        results.push({ argv, ok: true });
      } else if (cmd === '@kill-pidfile') {
        const pid = readPidfile(args[0]!);
        if (pid !== undefined && pidAlive(pid)) await runner.signal(pid, 'SIGTERM');
        results.push({ argv, ok: true });
      } else {
        const r = await runner.run(argv, { timeoutMs: 30_000 });
        results.push(
          r.code === 0 ? { argv, ok: true } : { argv, ok: false, error: r.stderr.trim() || `exit ${r.code}` },
        );
      }
    } catch (err) {
      results.push({ argv, ok: false, error: (err as Error).message });
    }
  }
  return results;
}

/** Link names that exist now (for stale VLAN links); [] when `ip` is missing. */
export async function liveLinks(runner: Runner): Promise<string[]> {
  const r = await runner.read(['ip', '-j', 'link', 'show']);
  return r.code === 0 ? parseIpJson(r.stdout).map((l) => l.name) : [];
}

/**
 * Live IPv4 state of every interface: `ip -j addr show` (iproute2), or, where `ip` has no JSON (busybox),
 * what the kernel tells the runtime (`os.networkInterfaces()`, interfaces with addresses only).
 */
export async function liveAddresses(runner: Runner): Promise<LiveInterface[]> {
  const r = await runner.read(['ip', '-j', 'addr', 'show']);
  const parsed = r.code === 0 ? parseIpJson(r.stdout) : [];
  if (parsed.length > 0) return parsed;
  return Object.entries(networkInterfaces()).map(([name, addrs]) => ({
    name,
    up: true,
    ipv4: (addrs ?? []).filter((a) => a.family === 'IPv4').map((a) => a.cidr ?? `${a.address}/32`),
  }));
}

/** Plans with the live links and runs the plan. */
export async function applyNetwork(
  cfg: ApplianceConfig,
  opts: { root?: string; runner?: Runner } = {},
): Promise<StepResult[]> {
  const runner = opts.runner ?? realRunner();
  const steps = planNetwork(cfg, { root: opts.root ?? '/', existingLinks: await liveLinks(runner) });
  return runPlan(steps, runner);
}

/** The default gateway from /proc/net/route text (hex, little-endian), for systems whose `ip` has no JSON. */
export function defaultGatewayFromProcRoute(text: string): string | undefined {
  for (const line of text.split('\n').slice(1)) {
    const [, dest, gw, flags] = line.trim().split(/\s+/);
    if (dest !== '00000000' || !gw || !flags || (Number.parseInt(flags, 16) & 2) === 0) continue;
    const n = Number.parseInt(gw, 16);
    return [0, 8, 16, 24].map((sh) => (n >>> sh) & 255).join('.');
  }
  return undefined;
}

/** The live default gateway: `ip -j route show default`, else /proc/net/route. */
export async function liveGateway(runner: Runner): Promise<string | undefined> {
  const r = await runner.read(['ip', '-j', 'route', 'show', 'default']);
  try {
    const gw = (JSON.parse(r.stdout) as { gateway?: string }[])[0]?.gateway;
    if (gw) return gw;
  } catch {}
  try {
    return defaultGatewayFromProcRoute(readFileSync('/proc/net/route', 'utf8'));
  } catch {
    return undefined;
  }
}

/** The name servers in a resolv.conf (for the network test in DHCP mode). */
export function readResolvConf(root = '/'): string[] {
  try {
    return readFileSync(resolvConfPath(root), 'utf8')
      .split('\n')
      .flatMap((l) => {
        const m = /^\s*nameserver\s+(\S+)/.exec(l);
        return m ? [m[1]!] : [];
      });
  } catch {
    return [];
  }
}
