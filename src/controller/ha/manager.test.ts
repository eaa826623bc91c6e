/**
 * The HA manager and the hosts' self-fence against an in-memory cluster with a virtual clock (in the
 * spirit of pve-ha-manager's scenario tests). Hosts send heartbeats every second; the leader renews their
 * leases (detection time), acknowledges, ticks every second and probes hosts without a lease; a host's
 * SelfFence kills its HA VMs when no acknowledgement came for the window. Every 100 ms the simulator
 * checks that no VM has two copies that can write to its disk (running and not blocklisted).
 */
import { describe, expect, it } from 'vitest';
import { SelfFence } from '../../node/self-fence';
import { type HaAction, HaManager, type HaVm, type Recovery } from './manager';
import { type HaPolicy, type IsolationResponse, selfFenceMs } from './policy';

const DETECTION_MS = 10_000;
const STEP = 100;

interface SimHost {
  name: string;
  up: boolean;
  linked: boolean;
  /** VM id → copy state. */
  /** `orphaned`: its serve died meanwhile (nothing on the host could fence it then). */
  copies: Map<string, { blocklisted: boolean; stopAt?: number; orphaned?: boolean }>;
  fence: SelfFence;
  leaseUntil: number;
  controller: boolean;
  /** Its heartbeats are lost (its node service still answers). */
  mute?: boolean;
}

interface SimVm {
  id: string;
  name: string;
  node: string;
  power: boolean;
  ha?: HaPolicy;
  local?: boolean;
}

class Sim {
  now = 0;
  readonly hosts = new Map<string, SimHost>();
  readonly vms = new Map<string, SimVm>();
  leader = 'h1';
  manager: HaManager;
  /** Saved recoveries (etcd). */
  readonly saved = new Map<string, Recovery>();
  readonly violations: string[] = [];
  /**
   * Stricter: a `poweroff` VM running on two hosts whose serve lives (so the self-fence, not only the
   * blocklist, must have ended the isolated copy first).
   */
  readonly twice: string[] = [];
  readonly isolated: string[] = [];
  private pendingStarts: { vm: string; host: string; at: number }[] = [];
  private ids = 0;
  private readonly newId = () => `r${++this.ids}`;
  private leaderDownAt?: number;

  constructor(names: string[], opts: { controllers?: string[] } = {}) {
    for (const name of names) {
      const host: SimHost = {
        name,
        up: true,
        linked: true,
        copies: new Map(),
        leaseUntil: DETECTION_MS,
        controller: (opts.controllers ?? names).includes(name),
        fence: undefined as unknown as SelfFence,
      };
      host.fence = this.selfFence(host);
      this.hosts.set(name, host);
    }
    this.manager = new HaManager(DETECTION_MS, 0, this.newId);
  }

  /** A host's self-fence as a new serve process has it (no window until the leader's first ack). */
  private selfFence(host: SimHost): SelfFence {
    const name = host.name;
    return new SelfFence(
      {
        haVms: () =>
          [...host.copies.keys()].flatMap((id) => {
            const vm = this.vms.get(id)!;
            // as VmService.runSpec: only a VM HA can restart elsewhere gets an isolation response
            return vm.ha?.enabled && !vm.local
              ? [{ id, name: vm.name, isolationResponse: vm.ha.isolationResponse }]
              : [];
          }),
        isolate: async (id, response) => {
          this.isolated.push(`${name}:${id}`);
          if (response === 'poweroff') host.copies.delete(id);
          else {
            const c = host.copies.get(id);
            if (c) c.stopAt = this.now + 3000; // the guest takes 3 s to shut down
          }
        },
      },
      () => this.now,
    );
  }

  vm(name: string, node: string, ha?: Partial<HaPolicy> & { local?: boolean }): SimVm {
    const policy: HaPolicy | undefined = ha
      ? {
          enabled: true,
          priority: 'medium',
          restartOrder: 0,
          isolationResponse: 'poweroff',
          ...ha,
        }
      : undefined;
    const v: SimVm = { id: `id-${name}`, name, node, power: true, local: ha?.local };
    if (policy) v.ha = policy;
    this.vms.set(v.id, v);
    this.hosts.get(node)!.copies.set(v.id, { blocklisted: false });
    return v;
  }

  host(name: string): SimHost {
    return this.hosts.get(name)!;
  }

  /** Whether `a` and `b` can talk (both up, both linked, or the same host). */
  private talk(a: SimHost, b: SimHost): boolean {
    if (!a.up || !b.up) return false;
    return a === b || (a.linked && b.linked);
  }

  crash(name: string): void {
    const h = this.host(name);
    h.up = false;
    h.copies.clear(); // its QEMUs die with it
    if (name === this.leader) this.leaderDownAt = this.now;
  }

  /** `serve` killed -9: the host is silent, its QEMUs live on (nothing on the host fences them). */
  killServe(name: string): void {
    const h = this.host(name);
    h.up = false;
    for (const c of h.copies.values()) c.orphaned = true;
    if (name === this.leader) this.leaderDownAt = this.now;
  }

  /** serve starts again: it re-attaches the QEMUs still there, with a new self-fence. */
  revive(name: string): void {
    const h = this.host(name);
    h.up = true;
    h.fence = this.selfFence(h);
  }

  run(ms: number): void {
    const end = this.now + ms;
    while (this.now < end) {
      this.now += STEP;
      this.step();
    }
  }

  private step(): void {
    const leader = this.host(this.leader);
    // Leader election: 3 s after the leader is gone (or cut off from the other controllers), another
    // controller that still reaches a majority leads; it starts a new manager from the saved recoveries.
    const quorum = (h: SimHost) =>
      [...this.hosts.values()].filter((o) => o.controller && this.talk(h, o)).length * 2 >
      [...this.hosts.values()].filter((o) => o.controller).length;
    if (!leader.up || !quorum(leader)) {
      this.leaderDownAt ??= this.now;
      if (this.now - this.leaderDownAt >= 3000) {
        const next = [...this.hosts.values()].find((h) => h.controller && h.up && quorum(h));
        if (next) {
          this.leader = next.name;
          this.leaderDownAt = undefined;
          this.manager = new HaManager(DETECTION_MS, this.now, this.newId);
          this.manager.load([...this.saved.values()].filter((r) => r.status !== 'done'));
        }
      }
    } else this.leaderDownAt = undefined;
    const lead = this.host(this.leader);
    const leading = lead.up && quorum(lead);

    for (const h of this.hosts.values()) {
      if (!h.up) continue;
      // Heartbeat every second: the leader renews the lease and acknowledges (contact = send time).
      if (this.now % 1000 === 0 && leading && this.talk(h, lead) && !h.mute) {
        h.leaseUntil = this.now + DETECTION_MS;
        h.fence.contact(this.now, selfFenceMs({ detectionSec: DETECTION_MS / 1000 }));
      }
      void h.fence.check();
      for (const [id, c] of h.copies) if (c.stopAt !== undefined && this.now >= c.stopAt) h.copies.delete(id);
    }

    // Starts the reconciler made last tick land now.
    for (const s of this.pendingStarts) {
      const h = this.host(s.host);
      if (h.up && this.vms.get(s.vm)?.node === s.host) h.copies.set(s.vm, { blocklisted: false });
    }
    this.pendingStarts = [];

    if (leading && this.now % 1000 === 0) this.leaderTick(lead);

    // The invariant: at most one copy of each VM can write to its disk.
    for (const vm of this.vms.values()) {
      const writers = [...this.hosts.values()].filter((h) => {
        const c = h.copies.get(vm.id);
        return c && !c.blocklisted;
      });
      if (writers.length > 1)
        this.violations.push(
          `${this.now} ms: ${vm.name} writes from ${writers.map((w) => w.name).join(', ')}`,
        );
      const live = [...this.hosts.values()].filter(
        (h) => h.up && h.copies.has(vm.id) && !h.copies.get(vm.id)!.orphaned,
      );
      if (vm.ha?.isolationResponse === 'poweroff' && live.length > 1)
        this.twice.push(`${this.now} ms: ${vm.name} runs on ${live.map((w) => w.name).join(', ')}`);
    }
  }

  private leaderTick(lead: SimHost): void {
    const seen = [...this.hosts.values()].map((h) => {
      const leased = this.now < h.leaseUntil;
      // Heartbeats overdue (3 s) or the lease gone: the leader probes; a probe that reaches the host is
      // contact for its self-fence (Node.probe), before the host would fence itself.
      const overdue = h.leaseUntil - DETECTION_MS < this.now - 3000;
      if (leased && !overdue) return { name: h.name, leased };
      const probeOk = this.talk(lead, h);
      if (probeOk) h.fence.contact(this.now);
      return { name: h.name, leased, probeOk };
    });
    const view: HaVm[] = [...this.vms.values()].map((v) => {
      const h = this.host(v.node);
      const x: HaVm = {
        id: v.id,
        name: v.name,
        node: v.node,
        poweredOn: v.power,
        running: h.up && h.copies.has(v.id),
      };
      if (v.ha) x.ha = v.ha;
      if (v.local) x.unprotected = 'a disk on the host’s local pool';
      return x;
    });
    this.apply(this.manager.tick(this.now, seen, view));
    // The reconciler: a VM asked to run whose host is reachable and that HA does not hold is started
    // there (after a short isolation, the cluster restarts what the host fenced).
    for (const v of this.vms.values()) {
      const h = this.host(v.node);
      if (!v.power || !this.talk(lead, h) || this.manager.recovering(v.node) || h.copies.has(v.id)) continue;
      this.pendingStarts.push({ vm: v.id, host: v.node, at: this.now });
    }
  }

  private apply(actions: HaAction[]): void {
    for (const a of actions) {
      if (a.kind === 'save') this.saved.set(a.recovery.id, a.recovery);
      else if (a.kind === 'reap') {
        const h = this.host(a.host);
        for (const id of a.vms) if (this.vms.get(id)?.node !== a.host) h.copies.delete(id);
      } else if (a.kind === 'fence') {
        // Blocklist every client of the failed host on these VMs' disks.
        const h = this.host(a.host);
        for (const id of a.vms) {
          const c = h.copies.get(id);
          if (c) c.blocklisted = true;
        }
        this.apply(this.manager.fenced(this.now, a.recovery, { ok: true, detail: 'blocklisted' }));
      } else if (a.kind === 'restart') {
        const vm = this.vms.get(a.vm)!;
        const target = [...this.hosts.values()]
          .filter((h) => h.name !== a.host && this.now < h.leaseUntil)
          .sort((x, y) => x.copies.size - y.copies.size || x.name.localeCompare(y.name))[0];
        if (!target) {
          this.apply(this.manager.restarted(this.now, a.recovery, a.vm, { ok: false, error: 'no host' }));
          continue;
        }
        vm.node = target.name;
        this.apply(this.manager.restarted(this.now, a.recovery, a.vm, { ok: true, target: target.name }));
      }
    }
  }

  /** Where each VM runs (hosts with a copy). */
  where(): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const vm of this.vms.values())
      out[vm.name] = [...this.hosts.values()].filter((h) => h.copies.has(vm.id)).map((h) => h.name);
    return out;
  }

  recoveries(): Recovery[] {
    return [...this.saved.values()];
  }
}

function lab(isolationResponse: IsolationResponse = 'poweroff'): Sim {
  const sim = new Sim(['h1', 'h2', 'h3']);
  sim.vm('db', 'h3', { priority: 'high', isolationResponse });
  sim.vm('web', 'h3', { priority: 'low', isolationResponse });
  sim.vm('batch', 'h3');
  sim.vm('local', 'h3', { local: true });
  sim.vm('app', 'h2', { isolationResponse });
  sim.run(5000);
  return sim;
}

describe('HA manager and self-fence (simulated cluster, virtual clock)', () => {
  it('a crashed host: its HA VMs run elsewhere after detection and fencing, by priority; the rest are listed', () => {
    const sim = lab();
    const crashAt = sim.now;
    sim.crash('h3');
    sim.run(30_000);
    expect(sim.violations).toEqual([]);
    const where = sim.where();
    expect(where.db).toHaveLength(1);
    expect(where.web).toHaveLength(1);
    expect(where.db![0]).not.toBe('h3');
    expect(where.batch).toEqual([]);
    expect(where.local).toEqual([]);
    const [r] = sim.recoveries();
    expect(r).toMatchObject({ host: 'h3', status: 'done' });
    // Detected once the lease ran out (10 s after the last heartbeat, which was up to 1 s before).
    expect(r!.detectedAt - crashAt).toBeGreaterThanOrEqual(DETECTION_MS - 1000);
    expect(r!.detectedAt - crashAt).toBeLessThanOrEqual(DETECTION_MS + 1000);
    expect(r!.fencedAt).toBeGreaterThanOrEqual(r!.detectedAt);
    expect(r!.vms.map((v) => [v.name, v.state])).toEqual([
      ['db', 'running'],
      ['web', 'running'],
    ]);
    // High priority first; low only once high runs.
    const [db, web] = r!.vms;
    expect(web!.restartedAt!).toBeGreaterThanOrEqual(db!.runningAt!);
    expect(r!.unprotected.map((u) => [u.name, u.reason])).toEqual([
      ['batch', 'HA is off for this VM'],
      ['local', 'a disk on the host’s local pool'],
    ]);
  });

  it('a partitioned host fences its own HA VMs before the others restart them; after the link returns there is still one copy', () => {
    const sim = lab();
    const cutAt = sim.now;
    sim.host('h3').linked = false;
    sim.run(6_000);
    // Not yet: the window is 9 s after the last acknowledged heartbeat (at most 1 s before the cut).
    expect(sim.isolated).toEqual([]);
    sim.run(25_000);
    expect(sim.violations).toEqual([]);
    expect(sim.isolated.sort()).toEqual(['h3:id-db', 'h3:id-web']);
    const where = sim.where();
    expect(where.db).toHaveLength(1);
    expect(where.db![0]).not.toBe('h3');
    expect(where.batch).toEqual(['h3']); // HA off: left running where it was
    const [r] = sim.recoveries();
    expect(r!.detectedAt - cutAt).toBeGreaterThanOrEqual(DETECTION_MS - 1000);
    sim.host('h3').linked = true;
    sim.run(20_000);
    expect(sim.violations).toEqual([]);
    expect(sim.where().db).toHaveLength(1);
    expect(sim.where().web).toHaveLength(1);
    expect(sim.recoveries()[0]!.returnedAt).toBeDefined();
    expect(sim.manager.hostState('h3')).toBe('online');
  });

  it('a 5 s link flap changes nothing', () => {
    const sim = lab();
    const before = sim.where();
    sim.host('h3').linked = false;
    sim.run(5_000);
    sim.host('h3').linked = true;
    sim.run(30_000);
    expect(sim.isolated).toEqual([]);
    expect(sim.recoveries()).toEqual([]);
    expect(sim.where()).toEqual(before);
  });

  it('the leader and a worker fail together: the next leader waits one detection time, then recovers both', () => {
    // Three controllers (a quorum survives one) and a worker.
    const sim = new Sim(['h1', 'h2', 'h3', 'h4'], { controllers: ['h1', 'h2', 'h3'] });
    sim.vm('db', 'h4', { priority: 'high' });
    sim.vm('web', 'h4', { priority: 'low' });
    sim.vm('ctl', 'h1', { priority: 'high' });
    sim.vm('app', 'h2');
    sim.run(5000);
    sim.crash('h1');
    sim.crash('h4');
    sim.run(40_000);
    expect(sim.violations).toEqual([]);
    expect(sim.leader).toBe('h2');
    const where = sim.where();
    for (const n of ['db', 'web', 'ctl']) expect(['h2', 'h3']).toContain(where[n]![0]);
    for (const n of ['db', 'web', 'ctl', 'app']) expect(where[n]).toHaveLength(1);
    expect(
      sim
        .recoveries()
        .map((r) => [r.host, r.status])
        .sort(),
    ).toEqual([
      ['h1', 'done'],
      ['h4', 'done'],
    ]);
  });

  it('a leader that dies in the middle of a recovery: the next one carries it on from the saved record', () => {
    const sim = new Sim(['h1', 'h2', 'h3', 'h4'], { controllers: ['h1', 'h2', 'h4'] });
    // Two high-priority VMs that cannot both run at once on the survivors before the leader dies.
    sim.vm('a', 'h3', { priority: 'high' });
    sim.vm('b', 'h3', { priority: 'low' });
    sim.run(5000);
    sim.crash('h3');
    // Run until the recovery is fenced and the first VM handed over, then kill the leader.
    for (let i = 0; i < 300 && !sim.recoveries().some((r) => r.vms.some((v) => v.restartedAt)); i++)
      sim.run(100);
    expect(sim.recoveries()[0]!.status).toBe('restarting');
    const old = sim.leader;
    sim.crash(old);
    sim.run(40_000);
    expect(sim.leader).not.toBe(old);
    expect(sim.violations).toEqual([]);
    const h3 = sim.recoveries().find((r) => r.host === 'h3')!;
    expect(h3.status).toBe('done');
    expect(sim.where().a).toHaveLength(1);
    expect(sim.where().b).toHaveLength(1);
  });

  it('a host that comes back while its VMs are being restarted does not get them twice', () => {
    const sim = lab();
    sim.host('h3').linked = false;
    // Until the recovery has started (declared, maybe fenced), then the link returns at once.
    for (let i = 0; i < 300 && sim.recoveries().length === 0; i++) sim.run(100);
    sim.host('h3').linked = true;
    sim.run(30_000);
    expect(sim.violations).toEqual([]);
    expect(sim.where().db).toHaveLength(1);
    expect(sim.where().db![0]).not.toBe('h3');
    expect(sim.recoveries()[0]!.status).toBe('done');
  });

  it('isolation response `leave`: the isolated copy lives on but is blocklisted before the restart', () => {
    const sim = lab('leave');
    sim.host('h3').linked = false;
    sim.run(30_000);
    expect(sim.violations).toEqual([]);
    expect(sim.isolated).toEqual([]);
    expect(sim.where().db).toHaveLength(2); // two processes, one writer
  });

  it('isolation response `shutdown`: the guest is asked to stop and its writes are fenced meanwhile', () => {
    const sim = lab('shutdown');
    sim.host('h3').linked = false;
    sim.run(30_000);
    expect(sim.violations).toEqual([]);
    expect(sim.isolated.sort()).toEqual(['h3:id-db', 'h3:id-web']);
    expect(sim.where().db).toHaveLength(1);
  });

  it('a host whose heartbeats stop but whose node service answers is not declared failed', () => {
    const sim = lab();
    // Heartbeats lost (the lease runs out) while the probe answers, which is contact for the self-fence.
    sim.host('h3').mute = true;
    sim.run(30_000);
    expect(sim.manager.hostState('h3')).toBe('degraded');
    expect(sim.recoveries()).toEqual([]);
    expect(sim.isolated).toEqual([]);
  });

  it('a wall-clock jump on a host changes nothing (the self-fence counts on a monotonic clock)', () => {
    let mono = 0;
    const killed: string[] = [];
    const f = new SelfFence(
      {
        haVms: () => [{ id: 'v', name: 'v', isolationResponse: 'poweroff' }],
        isolate: async (id) => void killed.push(id),
      },
      () => mono,
    );
    f.contact(0, 9000);
    const realNow = Date.now;
    try {
      Date.now = () => realNow() + 3600_000;
      mono = 5000;
      void f.check();
      expect(killed).toEqual([]);
      mono = 9000;
      void f.check();
      expect(killed).toEqual(['v']);
    } finally {
      Date.now = realNow;
    }
  });

  it('100 random faults (crash, partition, serve kill, lost heartbeats then partition; leader included): never two writers, each VM once after each', () => {
    // mulberry32: the same faults on every run
    let seed = 0x5eed;
    const rnd = () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
    const names = ['h1', 'h2', 'h3', 'h4'];
    const sim = new Sim(names, { controllers: ['h1', 'h2', 'h3'] });
    const responses: IsolationResponse[] = ['poweroff', 'poweroff', 'shutdown', 'leave'];
    for (let i = 0; i < 8; i++)
      sim.vm(`vm${i}`, names[i % 4]!, {
        priority: (['high', 'medium', 'low'] as const)[i % 3],
        isolationResponse: responses[i % 4],
      });
    sim.run(5000);
    const kinds = { crash: 0, partition: 0, serve: 0, mute: 0 };
    for (let f = 0; f < 100; f++) {
      const host = names[Math.floor(rnd() * names.length)]!;
      const kind = (['crash', 'partition', 'serve', 'mute'] as const)[Math.floor(rnd() * 4)]!;
      const downMs = 1000 + Math.floor(rnd() * 40) * 1000;
      kinds[kind]++;
      if (kind === 'crash') sim.crash(host);
      else if (kind === 'serve') sim.killServe(host);
      else if (kind === 'partition') sim.host(host).linked = false;
      else sim.host(host).mute = true; // heartbeats lost, probes answered; then the link goes too
      if (kind === 'mute') {
        sim.run(downMs);
        sim.host(host).linked = false;
      }
      sim.run(downMs);
      if (kind === 'partition' || kind === 'mute') {
        sim.host(host).linked = true;
        sim.host(host).mute = false;
      } else sim.revive(host);
      sim.run(45_000);
      const what = `after fault ${f} (${kind} of ${host} for ${downMs} ms)`;
      expect(sim.violations, what).toEqual([]);
      expect(sim.twice, what).toEqual([]);
      // settled: each VM runs once, where its record says (stale copies of a host that came back reaped)
      for (const vm of sim.vms.values())
        expect([vm.name, sim.where()[vm.name]], what).toEqual([vm.name, [vm.node]]);
    }
    expect(kinds.crash + kinds.partition + kinds.serve + kinds.mute).toBe(100);
    expect(Math.min(kinds.crash, kinds.partition, kinds.serve, kinds.mute)).toBeGreaterThan(15);
    // Every VM is on and runs exactly once, where its record says.
    for (const [name, hostsOf] of Object.entries(sim.where())) {
      const vm = [...sim.vms.values()].find((v) => v.name === name)!;
      expect([name, hostsOf]).toEqual([name, [vm.node]]);
    }
    expect(sim.recoveries().length).toBeGreaterThan(30);
    expect(sim.recoveries().every((r) => r.status === 'done')).toBe(true);
  });
});
