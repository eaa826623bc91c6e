import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type Vm } from '../api';
import { ctrlAltFn, PASTE_MAX, textKeyEvents, textKeysyms } from '../keys';
import { FormActions } from './FormActions';

interface Rfb {
  scaleViewport: boolean;
  resizeSession: boolean;
  disconnect(): void;
  sendCtrlAltDel(): void;
  /** Down and up when `down` is left out; a null code sends the keysym alone. */
  sendKey(keysym: number, code: string | null, down?: boolean): void;
  focus(): void;
  addEventListener(type: string, fn: (e: CustomEvent) => void): void;
}

const F_KEYS = Array.from({ length: 12 }, (_, i) => i + 1);

/** Key combinations the browser would keep for itself: Ctrl+Alt+Del and Ctrl+Alt+F1…F12. */
function SendKeysMenu({ disabled, onSend }: { disabled: boolean; onSend: (what: 'cad' | number) => void }) {
  const [open, setOpen] = useState(false);
  const box = useRef<HTMLDivElement>(null);
  // A click elsewhere or Escape closes the menu.
  useEffect(() => {
    if (!open) return;
    const click = (e: MouseEvent) => {
      if (!box.current?.contains(e.target as Node)) setOpen(false);
    };
    const key = (e: KeyboardEvent) => e.key === 'Escape' && setOpen(false);
    document.addEventListener('mousedown', click);
    document.addEventListener('keydown', key);
    return () => {
      document.removeEventListener('mousedown', click);
      document.removeEventListener('keydown', key);
    };
  }, [open]);
  const send = (what: 'cad' | number) => {
    setOpen(false);
    onSend(what);
  };
  return (
    <div class="send-keys" ref={box}>
      <button
        type="button"
        data-action="send-keys"
        aria-haspopup="menu"
        aria-expanded={open}
        disabled={disabled}
        onClick={() => setOpen(!open)}
      >
        Send keys ▾
      </button>
      {open && !disabled && (
        <div class="send-keys-menu" role="menu">
          <button type="button" role="menuitem" onClick={() => send('cad')}>
            Ctrl+Alt+Del
          </button>
          {F_KEYS.map((n) => (
            <button key={n} type="button" role="menuitem" onClick={() => send(n)}>
              Ctrl+Alt+F{n}
            </button>
          ))}
        </div>
      )}
    </div>
  );
}

/** Text typed into the guest as key presses (for a console without a clipboard). */
function PasteTextDialog({ onType, onClose }: { onType: (text: string) => string; onClose: () => void }) {
  const [text, setText] = useState('');
  const [error, setError] = useState('');
  function submit(e: Event) {
    e.preventDefault();
    const problem = onType(text);
    if (problem) setError(problem);
    else onClose();
  }
  return (
    <div class="modal-backdrop">
      <form class="modal paste-text-dialog" role="dialog" aria-label="Paste text" onSubmit={submit}>
        <h3>Paste text</h3>
        <div class="modal-body form">
          <label>
            Text to type
            <textarea
              name="text"
              rows={6}
              maxLength={PASTE_MAX}
              value={text}
              onInput={(e) => setText((e.target as HTMLTextAreaElement).value)}
            />
          </label>
          <p class="hint">
            Typed into the guest key by key; a new line presses Return. The guest's keyboard layout should be
            US.
          </p>
        </div>
        <FormActions
          error={error}
          busy={false}
          label="Type"
          busyLabel="Typing…"
          onCancel={onClose}
          disabled={!text}
        />
      </form>
    </div>
  );
}

/** noVNC console over the daemon's ticketed websocket. noVNC is loaded on first use (its own chunk). */
export function VmConsole({ vm }: { vm: Vm }) {
  const screen = useRef<HTMLDivElement>(null);
  const rfb = useRef<Rfb | undefined>();
  const [status, setStatus] = useState('connecting');
  const [attempt, setAttempt] = useState(0);
  const [paste, setPaste] = useState(false);
  const [sent, setSent] = useState('');
  const up = vm.state === 'running' || vm.state === 'paused';

  useEffect(() => {
    if (!up) {
      setStatus(`VM is ${vm.state}: no console`);
      return;
    }
    let closed = false;
    setStatus('connecting');
    (async () => {
      try {
        const [{ default: RFB }, t] = await Promise.all([
          import('@novnc/novnc'),
          api<{ path: string }>('POST', `/vms/${vm.id}/console-ticket`),
        ]);
        if (closed || !screen.current) return;
        const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}`;
        const r = new RFB(screen.current, wsBase + t.path) as unknown as Rfb;
        r.scaleViewport = true;
        r.addEventListener('connect', () => setStatus('connected'));
        r.addEventListener('disconnect', (e) =>
          setStatus(e.detail?.clean ? 'disconnected' : 'connection lost'),
        );
        rfb.current = r;
      } catch (e) {
        setStatus(`error: ${(e as Error).message}`);
      }
    })();
    return () => {
      closed = true;
      rfb.current?.disconnect();
      rfb.current = undefined;
    };
  }, [vm.id, up, attempt]);

  const connected = status === 'connected';
  function sendKeys(what: 'cad' | number) {
    const r = rfb.current;
    if (!r) return;
    if (what === 'cad') r.sendCtrlAltDel();
    else for (const k of ctrlAltFn(what)) r.sendKey(k.keysym, k.code, k.down);
    setSent(what === 'cad' ? 'Ctrl+Alt+Del sent' : `Ctrl+Alt+F${what} sent`);
    r.focus();
  }
  /** Types `text`; '' when done, else why not. */
  function typeText(text: string): string {
    const r = rfb.current;
    if (!r || status !== 'connected') return 'The console is not connected.';
    if (text.length > PASTE_MAX) return `At most ${PASTE_MAX} characters at a time.`;
    for (const k of textKeyEvents(text)) r.sendKey(k.keysym, k.code, k.down);
    const n = textKeysyms(text).length;
    setSent(`${n} key${n === 1 ? '' : 's'} typed`);
    r.focus();
    return '';
  }

  return (
    <div class="console">
      <div class="console-bar">
        <span class={`console-status ${status}`}>{status}</span>
        <SendKeysMenu disabled={!connected} onSend={sendKeys} />
        <button type="button" data-action="paste-text" disabled={!connected} onClick={() => setPaste(true)}>
          Paste text…
        </button>
        <button type="button" disabled={!up} onClick={() => setAttempt(attempt + 1)}>
          Reconnect
        </button>
        <button type="button" onClick={() => screen.current?.requestFullscreen?.()}>
          Full screen
        </button>
        {sent && <span class="console-sent muted">{sent}</span>}
      </div>
      <div class="console-screen" ref={screen} />
      {paste && <PasteTextDialog onType={typeText} onClose={() => setPaste(false)} />}
    </div>
  );
}
