import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type Vm } from '../api';

interface Rfb {
  scaleViewport: boolean;
  resizeSession: boolean;
  disconnect(): void;
  sendCtrlAltDel(): void;
  focus(): void;
  addEventListener(type: string, fn: (e: CustomEvent) => void): void;
}

/** noVNC console over the daemon's ticketed websocket. noVNC is loaded on first use (its own chunk). */
export function VmConsole({ vm }: { vm: Vm }) {
  const screen = useRef<HTMLDivElement>(null);
  const rfb = useRef<Rfb | undefined>();
  const [status, setStatus] = useState('connecting');
  const [attempt, setAttempt] = useState(0);
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

  return (
    <div class="console">
      <div class="console-bar">
        <span class={`console-status ${status}`}>{status}</span>
        <button type="button" disabled={status !== 'connected'} onClick={() => rfb.current?.sendCtrlAltDel()}>
          Ctrl-Alt-Del
        </button>
        <button type="button" disabled={!up} onClick={() => setAttempt(attempt + 1)}>
          Reconnect
        </button>
        <button type="button" onClick={() => screen.current?.requestFullscreen?.()}>
          Full screen
        </button>
      </div>
      <div class="console-screen" ref={screen} />
    </div>
  );
}
