/**
 * The console's screens on blessed: the main screen (grey and yellow, like the ESXi DCUI) under a stack of
 * views (menus, forms, dialogs, logs). blessed only draws boxes and parses keys; focus, editing and
 * rendering are ours (tui/forms.ts, tui/render.ts), so the screens behave the same on tty1, a serial
 * console and a test's pseudo-terminal.
 */

import { cpus, totalmem } from 'node:os';
import blessed from 'blessed';
import { VERSION } from '../src/version';
import {
  type ClusterKind,
  type ClusterStart,
  type ConsoleEnv,
  checkLogin,
  dmesgLines,
  enableSsh,
  gatherStatus,
  type HostStatus,
  loadConfig,
  networkTestPlan,
  passwordRequired,
  ping,
  pollCluster,
  restartServices,
  saveNetwork,
  savePassword,
  serveLogLines,
  shutdown,
  startCluster,
} from './actions';
import {
  createClusterForm,
  type FormSpec,
  FormState,
  joinClusterForm,
  loginForm,
  networkForm,
  networkValues,
  passwordForm,
  sshForm,
  type Values,
} from './forms';
import { joinSplitEscapes } from './input';
import {
  type HostFacts,
  type MenuItem,
  renderForm,
  renderMain,
  renderMenu,
  renderMessage,
  renderText,
} from './render';
import { clusterText, sshStatusLines } from './status';

export interface Key {
  name?: string;
  full?: string;
  ctrl?: boolean;
  meta?: boolean;
  shift?: boolean;
}

const GREY = { bg: 'white', fg: 'black' };
const YELLOW = { bg: 'yellow', fg: 'black' };

/** A printable character (typed or pasted), not a control key. */
function printable(ch: string | undefined, key: Key): string | undefined {
  if (!ch || key.ctrl || key.meta) return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are not text
  return /^[^\x00-\x1f\x7f]+$/.test(ch) ? ch : undefined;
}

abstract class View {
  /** Full screen (menus, logs) or a centred dialog. */
  full = false;
  box?: blessed.Widgets.BoxElement;
  style = GREY;
  constructor(protected readonly app: App) {}
  abstract render(width: number, height: number): string[];
  abstract key(ch: string | undefined, key: Key): void;
  /** Preferred dialog width. */
  width(screenWidth: number): number {
    return Math.max(40, Math.min(screenWidth - 4, 100));
  }
  close(): void {
    this.app.pop(this);
  }
}

class MessageView extends View {
  constructor(
    app: App,
    private readonly title: string,
    private lines: string[],
    private readonly onClose?: () => void,
  ) {
    super(app);
  }
  render(width: number): string[] {
    return renderMessage(this.title, this.lines, '<Enter> OK', width);
  }
  key(_ch: string | undefined, key: Key): void {
    if (key.name === 'enter' || key.name === 'escape') {
      this.close();
      this.onClose?.();
    }
  }
}

/** A question; `keys` maps key names to answers (e.g. f2: poweroff, f11: reboot). */
class ChoiceView extends View {
  constructor(
    app: App,
    private readonly title: string,
    private readonly lines: string[],
    private readonly help: string,
    private readonly keys: Record<string, () => void>,
  ) {
    super(app);
  }
  render(width: number): string[] {
    return renderMessage(this.title, this.lines, this.help, width);
  }
  key(_ch: string | undefined, key: Key): void {
    if (key.name === 'escape') {
      this.close();
      return;
    }
    const f = key.name ? this.keys[key.name] : undefined;
    if (f) {
      this.close();
      f();
    }
  }
}

/** A dialog whose lines change while work goes on; Esc hides it once `closable`. */
class ProgressView extends View {
  lines: string[] = [];
  closable = false;
  private spin = 0;
  constructor(
    app: App,
    private readonly title: string,
    private readonly onEscape?: () => void,
  ) {
    super(app);
  }
  render(width: number): string[] {
    const mark = this.closable ? '' : `${'|/-\\'[this.spin++ % 4]} `;
    return renderMessage(
      this.title,
      this.lines.map((l, i) => (i === this.lines.length - 1 && mark ? `${mark}${l}` : l)),
      this.closable ? '<Esc> Close' : 'Working...',
      width,
    );
  }
  update(lines: string[]): void {
    this.lines = lines;
    this.app.redraw();
  }
  key(_ch: string | undefined, key: Key): void {
    if (key.name === 'escape' && this.closable) {
      this.close();
      this.onEscape?.();
    }
  }
}

class FormView extends View {
  constructor(
    app: App,
    readonly state: FormState,
    private readonly onSubmit: (values: Values) => void,
  ) {
    super(app);
  }
  render(width: number): string[] {
    return renderForm(this.state, width);
  }
  key(ch: string | undefined, key: Key): void {
    const s = this.state;
    const text = printable(ch, key);
    switch (key.name) {
      case 'escape':
        this.close();
        return;
      case 'up':
        s.prev();
        break;
      case 'down':
        s.next();
        break;
      case 'tab':
        if (key.shift) s.prev();
        else s.next();
        break;
      case 'left':
        s.cycle(-1);
        break;
      case 'right':
        s.cycle(1);
        break;
      case 'backspace':
        s.backspace();
        break;
      case 'enter': {
        const r = s.enter();
        if (r === 'cancel') {
          this.close();
          return;
        }
        if (r === 'submit') {
          this.close();
          this.onSubmit({ ...s.values });
          return;
        }
        break;
      }
      default:
        if (key.ctrl && key.name === 'u') s.clear();
        else if (text) s.type(text);
    }
    this.app.redraw();
  }
}

class MenuView extends View {
  override full = true;
  private selected = 0;
  constructor(
    app: App,
    private readonly title: string,
    private readonly items: (MenuItem & { open: () => void })[],
    private readonly help = '<Up/Down> Select  <Enter> Change  <Esc> Back',
  ) {
    super(app);
  }
  render(width: number, height: number): string[] {
    return renderMenu(this.title, this.items, this.selected, this.help, width, height);
  }
  key(_ch: string | undefined, key: Key): void {
    const n = this.items.length;
    if (key.name === 'escape') {
      this.close();
      return;
    }
    if (key.name === 'up') this.selected = (this.selected + n - 1) % n;
    else if (key.name === 'down') this.selected = (this.selected + 1) % n;
    else if (key.name === 'enter') {
      this.items[this.selected]!.open();
      return;
    }
    this.app.redraw();
  }
}

class TextView extends View {
  override full = true;
  private scroll = 0;
  private rows = 20;
  constructor(
    app: App,
    private readonly title: string,
    private readonly text: string[],
  ) {
    super(app);
    // Logs: start at the end, where the news is.
    this.scroll = Number.MAX_SAFE_INTEGER;
  }
  render(width: number, height: number): string[] {
    this.rows = height - 2;
    this.scroll = Math.max(0, Math.min(this.scroll, this.text.length - this.rows));
    return renderText(this.title, this.text, this.scroll, width, height);
  }
  key(_ch: string | undefined, key: Key): void {
    const page = Math.max(1, this.rows - 1);
    const moves: Record<string, number> = {
      up: -1,
      down: 1,
      pageup: -page,
      pagedown: page,
      home: -Number.MAX_SAFE_INTEGER,
      end: Number.MAX_SAFE_INTEGER,
    };
    if (key.name === 'escape' || key.name === 'q') {
      this.close();
      return;
    }
    const d = key.name ? moves[key.name] : undefined;
    if (d === undefined) return;
    this.scroll = Math.max(0, Math.min(this.scroll + d, Math.max(0, this.text.length - this.rows)));
    this.app.redraw();
  }
}

export class App {
  private readonly screen: blessed.Widgets.Screen;
  private readonly top: blessed.Widgets.BoxElement;
  private readonly bottom: blessed.Widgets.BoxElement;
  private readonly footer: blessed.Widgets.BoxElement;
  private readonly stack: View[] = [];
  private status: HostStatus | undefined;
  private refreshing: Promise<void> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  /** A cluster failure this console saw (the config went back to none after a refused join). */
  private lastClusterError: string | undefined;
  private readonly facts: HostFacts;
  private exit!: (code: number) => void;

  constructor(private readonly env: ConsoleEnv) {
    this.facts = {
      product: 'NeuroFlow',
      version: VERSION,
      cpus: cpus().length,
      cpuModel: (cpus()[0]?.model ?? '').replace(/\s+/g, ' ').trim(),
      memoryBytes: totalmem(),
      ...(env.dryRunLog ? { dryRunLog: env.dryRunLog } : {}),
    };
    // Serial consoles deliver a key's escape sequence in pieces at times: join them before blessed parses.
    joinSplitEscapes(process.stdin);
    this.screen = blessed.screen({
      smartCSR: true,
      terminal: process.env.TERM || 'linux',
      fullUnicode: false,
      warnings: false,
      title: 'NeuroFlow',
    });
    this.top = blessed.box({ parent: this.screen, tags: true, style: { ...GREY } });
    this.bottom = blessed.box({ parent: this.screen, tags: true, style: { ...YELLOW } });
    this.footer = blessed.box({ parent: this.screen, tags: true, style: { ...GREY } });
    this.screen.on('keypress', (ch: string | undefined, key: Key) => this.onKey(ch, key));
    this.screen.on('resize', () => this.redraw());
  }

  run(): Promise<number> {
    const done = new Promise<number>((resolve) => {
      this.exit = resolve;
    });
    this.redraw();
    void this.refresh();
    this.timer = setInterval(() => void this.refresh(), 3000);
    return done.finally(() => {
      clearInterval(this.timer);
      this.screen.destroy();
    });
  }

  stop(code = 0): void {
    this.exit(code);
  }

  /** Re-reads config, live network, serve log and API; the main screen follows. */
  refresh(): Promise<void> {
    this.refreshing ??= gatherStatus(this.env, this.lastClusterError)
      .then((s) => {
        this.status = s;
        this.redraw();
      })
      .catch(() => {})
      .finally(() => {
        this.refreshing = undefined;
      });
    return this.refreshing;
  }

  redraw(): void {
    const w = (this.screen.width as number) || 80;
    const h = (this.screen.height as number) || 24;
    const topH = Math.max(7, Math.floor(h * 0.38));
    const main = renderMain(this.status, this.facts, w);
    Object.assign(this.top.position, { top: 0, left: 0, width: w, height: topH });
    Object.assign(this.bottom.position, { top: topH, left: 0, width: w, height: h - topH - 1 });
    Object.assign(this.footer.position, { top: h - 1, left: 0, width: w, height: 1 });
    this.top.setContent(main.top.join('\n'));
    this.bottom.setContent(main.bottom.join('\n'));
    this.footer.setContent(main.footer);
    for (const v of this.stack) {
      if (!v.box) continue;
      if (v.full) {
        Object.assign(v.box.position, { top: 0, left: 0, width: w, height: h });
        v.box.setContent(v.render(w, h).join('\n'));
      } else {
        const dw = Math.min(w, v.width(w));
        const lines = v.render(dw - 2, h - 2);
        const dh = Math.min(h, lines.length + 2);
        Object.assign(v.box.position, {
          top: Math.max(0, Math.floor((h - dh) / 2)),
          left: Math.max(0, Math.floor((w - dw) / 2)),
          width: dw,
          height: dh,
        });
        v.box.setContent(lines.join('\n'));
      }
    }
    this.screen.render();
  }

  push(v: View): void {
    // Dialogs get a black frame, as on the DCUI.
    v.box = v.full
      ? blessed.box({ parent: this.screen, tags: true, style: { ...v.style } })
      : blessed.box({
          parent: this.screen,
          tags: true,
          border: { type: 'bg' },
          style: { ...v.style, border: { bg: 'black' } },
        });
    this.stack.push(v);
    this.redraw();
  }

  pop(v: View): void {
    const i = this.stack.indexOf(v);
    if (i < 0) return;
    this.stack.splice(i, 1);
    v.box?.destroy();
    this.redraw();
  }

  private onKey(ch: string | undefined, key: Key): void {
    // blessed reports Enter twice ("enter", then "return"): act on "enter".
    if (key.name === 'return') return;
    if (key.full === 'C-c') {
      this.stop(0);
      return;
    }
    // Ctrl-L repaints the whole terminal (a kernel message printed over the console, a serial terminal
    // attached late): blessed otherwise only sends what changed.
    if (key.full === 'C-l') {
      this.screen.realloc();
      this.screen.render();
      return;
    }
    const topView = this.stack[this.stack.length - 1];
    if (topView) {
      topView.key(ch, key);
      return;
    }
    if (key.name === 'f2') this.withLogin(() => this.openCustomize());
    else if (key.name === 'f12') this.withLogin(() => this.openShutdown());
  }

  // -------------------------------------------------------------------------------------------------------
  // Helpers

  message(title: string, lines: string[], onClose?: () => void): void {
    this.push(new MessageView(this, title, lines, onClose));
  }

  form(spec: FormSpec, initial: Values, onSubmit: (values: Values) => void): void {
    this.push(new FormView(this, new FormState(spec, initial), onSubmit));
  }

  /** Runs an action behind a "working" dialog and shows its report (or its error). */
  act(title: string, fn: () => Promise<{ lines: string[] }>): void {
    const p = new ProgressView(this, title);
    p.lines = ['Working...'];
    this.push(p);
    fn()
      .then((r) => {
        this.pop(p);
        this.message(title, r.lines);
      })
      .catch((err) => {
        this.pop(p);
        this.message(title, [`Failed: ${(err as Error).message}`]);
      })
      .finally(() => void this.refresh());
  }

  private withLogin(then: () => void): void {
    if (!passwordRequired(this.env)) {
      then();
      return;
    }
    this.form(loginForm, {}, (v) => {
      if (checkLogin(this.env, v.password ?? '')) {
        then();
        return;
      }
      // A wrong password costs a second.
      const p = new ProgressView(this, loginForm.title);
      p.lines = ['Checking...'];
      this.push(p);
      setTimeout(() => {
        this.pop(p);
        this.message(loginForm.title, ['Wrong password.']);
      }, 1000);
    });
  }

  // -------------------------------------------------------------------------------------------------------
  // Screens

  private openCustomize(): void {
    const env = this.env;
    const cfg = () => {
      try {
        return loadConfig(env);
      } catch {
        return undefined;
      }
    };
    const items: (MenuItem & { open: () => void })[] = [
      {
        label: 'Configure Root Password',
        describe: () => [
          cfg()?.rootPassword ? 'Root password: set' : 'Root password: not set',
          '',
          'The password of the Linux root account (console, SSH) and of the web UI login "root".',
        ],
        open: () =>
          this.form(passwordForm, {}, (v) => this.act('Configure Root Password', () => savePassword(env, v))),
      },
      {
        label: 'Configure Management Network',
        describe: () => {
          const c = cfg();
          if (!c)
            return ['Not configured.', '', 'Host name, DHCP or a static IPv4 address, gateway, DNS, VLAN.'];
          const n = c.network;
          return [
            `Host name:   ${c.hostname}`,
            `Adapter:     ${n.interface}${n.vlan ? ` (VLAN ${n.vlan})` : ''}`,
            `IPv4:        ${n.mode === 'static' ? n.address : 'DHCP'}`,
            ...(n.mode === 'static' ? [`Gateway:     ${n.gateway ?? '-'}`] : []),
            `DNS servers: ${n.dns.join(', ') || (n.mode === 'dhcp' ? 'from DHCP' : '-')}`,
            '',
            this.status ? `Now: ${this.status.management.detail}` : '',
          ];
        },
        open: () =>
          this.form(networkForm, networkValues(cfg()), (v) =>
            this.act('Configure Management Network', () => saveNetwork(env, v)),
          ),
      },
      {
        label: 'Create a Cluster',
        describe: () => [
          `Cluster: ${this.status ? clusterText(this.status.cluster) : '...'}`,
          '',
          'Found a new cluster on this host. It becomes its first controller; other hosts join with a token.',
        ],
        open: () => this.openCluster('create'),
      },
      {
        label: 'Join a Cluster',
        describe: () => [
          `Cluster: ${this.status ? clusterText(this.status.cluster) : '...'}`,
          '',
          'Join an existing cluster with a token made on one of its controllers.',
        ],
        open: () => this.openCluster('join'),
      },
      {
        label: 'View System Logs',
        describe: () => ['The NeuroFlow management service log and the kernel log (dmesg).'],
        open: () => this.openLogs(),
      },
      {
        label: 'Troubleshooting Options',
        describe: () => [
          'Restart the management services, enable SSH for a while, test the management network.',
        ],
        open: () => this.openTroubleshooting(),
      },
    ];
    this.push(
      new MenuView(this, 'System Customization', items, '<Up/Down> Select  <Enter> Change  <Esc> Log Out'),
    );
  }

  private openCluster(kind: ClusterKind): void {
    const s = this.status;
    if (s?.facts) {
      this.message(kind === 'create' ? 'Create a Cluster' : 'Join a Cluster', [
        `This host is already in cluster ${s.facts.clusterName} as ${s.facts.role}.`,
        'Remove it from the cluster (on a controller: neuroflow node remove) and reinstall it to use it elsewhere.',
      ]);
      return;
    }
    const spec = kind === 'create' ? createClusterForm : joinClusterForm;
    this.form(spec, {}, (v) => {
      const p = new ProgressView(this, spec.title, () => void this.refresh());
      p.lines = [kind === 'create' ? 'Creating the cluster...' : 'Joining the cluster...'];
      this.push(p);
      startCluster(this.env, kind, v)
        .then((start) => this.followCluster(p, start))
        .catch((err) => {
          p.closable = true;
          p.update([`Failed: ${(err as Error).message}`]);
        });
    });
  }

  /** Polls until serve is in the cluster, or says why not (shown as serve printed it). */
  private followCluster(p: ProgressView, start: ClusterStart): void {
    p.closable = true;
    const head = [
      start.restart.message,
      ...(this.env.dryRun ? ['Dry run: the management service was not really signalled.'] : []),
      '',
    ];
    const tick = async (): Promise<void> => {
      if (!this.stack.includes(p)) return void this.refresh();
      const r = await pollCluster(this.env, start).catch(
        (err) => ({ done: false, message: (err as Error).message }) as const,
      );
      const secs = Math.round((Date.now() - start.startedAt) / 1000);
      if (r.done) {
        if (!r.ok) this.lastClusterError = r.message;
        else this.lastClusterError = undefined;
        p.update([...head, r.ok ? `Done: ${r.message}.` : `Failed: ${r.message}`]);
        void this.refresh();
        return;
      }
      p.update([...head, `${r.message} (${secs} s)`]);
      setTimeout(() => void tick(), 1000);
    };
    void tick();
  }

  private openLogs(): void {
    const env = this.env;
    this.push(
      new MenuView(this, 'View System Logs', [
        {
          label: 'NeuroFlow service log',
          describe: () => [env.paths.serveLog, '', 'What the management service (neuroflow serve) printed.'],
          open: () =>
            void serveLogLines(env).then((l) => this.push(new TextView(this, env.paths.serveLog, l))),
        },
        {
          label: 'Kernel log (dmesg)',
          describe: () => ['The kernel ring buffer: hardware, drivers, KVM.'],
          open: () => void dmesgLines(env).then((l) => this.push(new TextView(this, 'dmesg', l))),
        },
      ]),
    );
  }

  private openTroubleshooting(): void {
    const env = this.env;
    const sshOn = () => !!this.status?.sshUntil;
    this.push(
      new MenuView(this, 'Troubleshooting Options', [
        {
          label: 'Restart Management Services',
          describe: () => [
            'Restarts the NeuroFlow management service (API, web UI, cluster membership).',
            'Running VMs keep running.',
          ],
          open: () =>
            this.push(
              new ChoiceView(
                this,
                'Restart Management Services',
                [
                  'Restart the management services now?',
                  'Browser sessions are logged out; VMs keep running.',
                ],
                '<F11> Restart  <Esc> Cancel',
                { f11: () => this.act('Restart Management Services', () => restartServices(env)) },
              ),
            ),
        },
        {
          label: 'Enable or Disable SSH',
          describe: () => [
            sshOn()
              ? `SSH is enabled until ${this.status!.sshUntil!.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' })}.`
              : 'SSH is disabled.',
            ...sshStatusLines(this.status?.ssh),
            '',
            'Root login over SSH with the root password, for a limited time.',
          ],
          open: () =>
            sshOn()
              ? this.act('Disable SSH', () => enableSsh(env, null))
              : this.form(sshForm, { minutes: '60' }, (v) =>
                  this.act('Enable SSH', () => enableSsh(env, Number(v.minutes))),
                ),
        },
        {
          label: 'Test Management Network',
          describe: () => ['Pings the default gateway and the DNS servers.'],
          open: () => this.testNetwork(),
        },
      ]),
    );
  }

  private testNetwork(): void {
    const p = new ProgressView(this, 'Test Management Network');
    p.lines = ['Looking at the network...'];
    this.push(p);
    void (async () => {
      const plan = await networkTestPlan(this.env);
      const lines = [...plan.notes, ''];
      p.update(lines);
      for (const t of plan.targets) {
        lines.push(`Pinging ${t.role} ${t.ip}...`);
        p.update(lines);
        const r = await ping(this.env, t.ip);
        lines[lines.length - 1] = `${r.ok ? 'OK    ' : 'FAILED'} ${t.role} ${t.ip}: ${r.summary}`;
        p.update(lines);
      }
      if (plan.targets.length === 0) lines.push('Nothing to ping.');
      p.closable = true;
      p.update(lines);
    })().catch((err) => {
      p.closable = true;
      p.update([`Failed: ${(err as Error).message}`]);
    });
  }

  private openShutdown(): void {
    const env = this.env;
    const confirm = (kind: 'poweroff' | 'reboot') =>
      this.push(
        new ChoiceView(
          this,
          kind === 'poweroff' ? 'Confirm Shut Down' : 'Confirm Restart',
          [
            kind === 'poweroff' ? 'Shut down this host?' : 'Restart this host?',
            'Its running VMs are shut down first (forced off after 2 minutes by default).',
            'They stay off when the host comes back.',
          ],
          `<F${kind === 'poweroff' ? '2' : '11'}> ${kind === 'poweroff' ? 'Shut Down' : 'Restart'}  <Esc> Cancel`,
          {
            [kind === 'poweroff' ? 'f2' : 'f11']: () =>
              this.act('Shut Down/Restart', () => shutdown(env, kind)),
          },
        ),
      );
    this.push(
      new ChoiceView(
        this,
        'Shut Down/Restart',
        [`Host ${this.status?.hostname ?? ''}`.trim()],
        '<F2> Shut Down  <F11> Restart  <Esc> Cancel',
        { f2: () => confirm('poweroff'), f11: () => confirm('reboot') },
      ),
    );
  }
}
