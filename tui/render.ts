/**
 * The console's screens as lines of text with blessed tags ({yellow-bg}...{/yellow-bg}), computed without
 * blessed so they can be tested. ASCII only: the Linux console's font has no ellipsis or box drawing
 * without the right code page.
 */
import type { HostStatus } from './actions';
import type { FieldSpec, FormState } from './forms';
import { cephText, clusterText } from './status';

/** Escapes text for blessed tags. */
export function esc(s: string): string {
  return s.replace(/[{}]/g, (c) => (c === '{' ? '{open}' : '{close}'));
}

/** Cuts plain text to `w` columns (marking the cut) and pads it. */
export function fitText(s: string, w: number): string {
  if (w <= 0) return '';
  const flat = s.replace(/[\t\r]/g, ' ');
  if (flat.length > w) return w > 3 ? `${flat.slice(0, w - 3)}...` : flat.slice(0, w);
  return flat.padEnd(w);
}

/**
 * Colours for the Linux console's eight: "grey" is white (47), "yellow" is its brown-yellow (43). Bold
 * makes a foreground bright, so bold black is dark grey: that reads as disabled, bold white as emphasis.
 */
export const strong = (tagged: string) => `{white-fg}{bold}${tagged}{/bold}{/white-fg}`;
export const dim = (tagged: string) => `{black-fg}{bold}${tagged}{/bold}{/black-fg}`;
export const highlight = (tagged: string) => `{yellow-bg}{black-fg}${tagged}{/black-fg}{/yellow-bg}`;

/** A bar across the width: yellow with black text (the DCUI's title bars). */
export function titleBar(title: string, width: number): string {
  return highlight(esc(fitText(` ${title}`, width)));
}

/** Left and right texts on one line of `width`. */
export function spread(left: string, right: string, width: number): string {
  const gap = Math.max(1, width - left.length - right.length);
  return fitText(left + ' '.repeat(gap) + right, width);
}

// ---------------------------------------------------------------------------------------------------------
// Main screen

export interface HostFacts {
  product: string;
  version: string;
  cpus: number;
  cpuModel: string;
  memoryBytes: number;
  dryRunLog?: string;
}

export function renderMain(
  s: HostStatus | undefined,
  facts: HostFacts,
  width: number,
): { top: string[]; bottom: string[]; footer: string } {
  const gib = (facts.memoryBytes / 1024 ** 3).toFixed(1);
  const top = [
    '',
    `  ${strong(esc(`${facts.product} ${facts.version}`))}`,
    '  Open-source virtualization: QEMU/KVM, etcd, a REST API, a web UI.',
    '',
    `  ${esc(`${facts.cpus} x ${facts.cpuModel || 'CPU'}`)}`,
    `  ${esc(`${gib} GiB Memory`)}`,
  ];
  const bottom: string[] = [''];
  if (!s) {
    bottom.push('  Reading the host state...');
  } else {
    bottom.push('  To manage this host, go to:');
    bottom.push(`  ${strong(esc(s.management.text))}`);
    bottom.push('');
    bottom.push(`  Host name:      ${esc(s.hostname)}`);
    bottom.push(`  Management IP:  ${esc(s.management.ip ?? s.management.text)}`);
    bottom.push(`  Network:        ${esc(s.management.detail)}`);
    bottom.push(`  Cluster:        ${esc(clusterText(s.cluster))}`);
    if (s.probe.ceph)
      bottom.push(`  Ceph:           ${esc(fitText(cephText(s.probe.ceph), width - 20).trimEnd())}`);
    const warnings: string[] = [];
    if (s.configError) warnings.push(`Config: ${s.configError}`);
    if (s.management.warning) warnings.push(s.management.warning);
    if (s.sshUntil)
      warnings.push(
        `SSH is enabled until ${s.sshUntil.toLocaleTimeString('en-GB', { hour: '2-digit', minute: '2-digit' })}`,
      );
    if (s.cfg && !s.cfg.rootPassword) warnings.push('No root password is set (F2 > Configure Root Password)');
    if (warnings.length) bottom.push('');
    for (const w of warnings) bottom.push(`  ${strong(esc(fitText(`! ${w}`, width - 4)))}`);
  }
  if (facts.dryRunLog) {
    bottom.push('');
    bottom.push(`  ${esc(fitText(`Dry run: commands are logged to ${facts.dryRunLog}`, width - 4))}`);
  }
  const footer = esc(spread(' <F2> Customize System/View Logs', '<F12> Shut Down/Restart ', width));
  return { top, bottom, footer };
}

// ---------------------------------------------------------------------------------------------------------
// Dialogs

export function renderMessage(title: string, body: string[], help: string, width: number): string[] {
  const inner = width - 4;
  const wrapped = body.flatMap((l) => wrap(l, inner));
  return [
    titleBar(title, width),
    '',
    ...wrapped.map((l) => `  ${esc(l)}`),
    '',
    `  ${esc(fitText(help, inner))}`,
  ];
}

/** Word wrap to `w` columns (long words are cut). */
export function wrap(text: string, w: number): string[] {
  if (text.length <= w) return [text];
  const out: string[] = [];
  let line = '';
  for (const word of text.split(/ +/)) {
    let rest = word;
    while (rest.length > w) {
      if (line) {
        out.push(line);
        line = '';
      }
      out.push(rest.slice(0, w));
      rest = rest.slice(w);
    }
    if (!line) line = rest;
    else if (line.length + 1 + rest.length <= w) line += ` ${rest}`;
    else {
      out.push(line);
      line = rest;
    }
  }
  if (line) out.push(line);
  return out;
}

const LABEL_W = 21;

function fieldWidth(f: FieldSpec, width: number): number {
  // Only a long text (a join token) gets the full width.
  return f.kind === 'text' && f.maxLength && f.maxLength > 64
    ? Math.max(20, width - LABEL_W - 8)
    : f.maxLength && f.maxLength > 20
      ? 40
      : 20;
}

function shownValue(f: FieldSpec, value: string, w: number, focused: boolean): string {
  const text = f.kind === 'password' ? '*'.repeat(value.length) : value;
  const room = focused ? w - 1 : w;
  const cut = text.length > room ? `<${text.slice(text.length - room + 1)}` : text;
  return (focused ? `${cut}_` : cut).padEnd(w);
}

/** A form: title bar, intro, one line per field (error beside it, or below when it does not fit), buttons. */
export function renderForm(state: FormState, width: number): string[] {
  const lines = [titleBar(state.spec.title, width), ''];
  for (const l of state.spec.intro ?? []) for (const w of wrap(l, width - 4)) lines.push(`  ${esc(w)}`);
  if (state.spec.intro?.length) lines.push('');
  const focus = state.focus;
  const errors = state.errors();
  for (const f of state.visibleFields()) {
    const focused = focus.kind === 'field' && focus.key === f.key;
    const value = state.values[f.key] ?? '';
    const w = fieldWidth(f, width);
    let box: string;
    if (f.kind === 'choice') {
      box = `< ${value} >`.padEnd(w + 2);
    } else {
      box = `[${shownValue(f, value, w, focused)}]`;
    }
    const boxTagged = focused ? highlight(esc(box)) : esc(box);
    const head = `  ${fitText(`${f.label}:`, LABEL_W)}`;
    const err = state.touched.has(f.key) ? errors[f.key] : undefined;
    const hint = typeof f.hint === 'function' ? f.hint(state.values) : f.hint;
    const note = err ? `! ${err}` : (hint ?? '');
    const room = width - head.length - box.length - 3;
    const noteTagged = (t: string) => (err ? `{red-fg}{bold}${esc(t)}{/bold}{/red-fg}` : esc(t));
    if (!note || note.length <= room) {
      lines.push(`${esc(head)}${boxTagged}${note ? `  ${noteTagged(note)}` : ''}`);
    } else {
      lines.push(`${esc(head)}${boxTagged}`);
      for (const w2 of wrap(note, width - LABEL_W - 4))
        lines.push(`${' '.repeat(LABEL_W + 2)}${noteTagged(w2)}`);
    }
  }
  lines.push('');
  const valid = state.valid;
  const okText = `< ${state.spec.okLabel ?? 'OK'} >`;
  const button = (text: string, on: boolean, enabled: boolean) =>
    on ? highlight(esc(text)) : enabled ? esc(text) : dim(esc(text));
  const okOn = focus.kind === 'button' && focus.button === 'ok';
  const cancelOn = focus.kind === 'button' && focus.button === 'cancel';
  const pad = Math.max(2, Math.floor((width - okText.length - 14) / 2));
  lines.push(`${' '.repeat(pad)}${button(okText, okOn, valid)}    ${button('< Cancel >', cancelOn, true)}`);
  lines.push('');
  const choice = state.focusedField()?.kind === 'choice' ? '  <Left/Right> Change' : '';
  lines.push(
    `  ${esc(fitText(`<Up/Down> Move${choice}  ${valid ? '<Enter> OK' : 'OK is disabled: fix the fields marked !'}  <Esc> Cancel`, width - 4))}`,
  );
  return lines;
}

// ---------------------------------------------------------------------------------------------------------
// Full-screen views

export interface MenuItem {
  label: string;
  /** Shown on the right while the item is selected. */
  describe: () => string[];
}

/** The DCUI's System Customization: items on the left, the selected item's description on the right. */
export function renderMenu(
  title: string,
  items: MenuItem[],
  selected: number,
  help: string,
  width: number,
  height: number,
): string[] {
  const left = Math.min(40, Math.floor(width * 0.42));
  const right = width - left - 2;
  const desc = items[selected]?.describe().flatMap((l) => wrap(l, right - 2)) ?? [];
  const lines: string[] = [];
  lines.push(
    `${highlight(esc(fitText(` ${title}`, left)))}  ${strong(esc(fitText(items[selected]?.label ?? '', right)))}`,
  );
  const rows = Math.max(items.length, desc.length) + 1;
  for (let i = 0; i < Math.min(rows, height - 3); i++) {
    const item = i >= 1 ? items[i - 1] : undefined;
    const d = i >= 1 ? (desc[i - 1] ?? '') : '';
    let l = ' '.repeat(left);
    if (item) {
      const t = fitText(`  ${item.label}`, left);
      l = i - 1 === selected ? highlight(esc(t)) : esc(t);
    }
    lines.push(`${l}  ${esc(fitText(d, right))}`);
  }
  while (lines.length < height - 1) lines.push('');
  lines.push(esc(fitText(` ${help}`, width)));
  return lines;
}

/** A scrolled text (logs): title bar, the lines from `scroll`, the help line. */
export function renderText(
  title: string,
  text: string[],
  scroll: number,
  width: number,
  height: number,
): string[] {
  const rows = height - 2;
  const slice = text.slice(scroll, scroll + rows);
  const where = `${Math.min(text.length, scroll + 1)}-${Math.min(text.length, scroll + rows)} of ${text.length}`;
  const lines = [titleBar(spread(title, `${where} `, width - 1), width)];
  for (const l of slice) lines.push(esc(fitText(` ${l}`, width)));
  while (lines.length < height - 1) lines.push('');
  lines.push(esc(fitText(' <Up/Down/PgUp/PgDn/Home/End> Scroll  <Esc> Back', width)));
  return lines;
}
