import { useEffect, useRef, useState } from 'preact/hooks';
import { api, type Vm } from '../api';

/** The serial console log, refreshed every 2 s while the tab is open. */
export function VmSerial({ vm }: { vm: Vm }) {
  const [text, setText] = useState('');
  const [error, setError] = useState('');
  const pre = useRef<HTMLPreElement>(null);
  useEffect(() => {
    let stop = false;
    const load = async () => {
      try {
        const t = await api<string>('GET', `/vms/${vm.id}/console-log`);
        if (stop) return;
        setText(t);
        setError('');
      } catch (e) {
        if (!stop) setError((e as Error).message);
      }
    };
    load();
    const timer = setInterval(load, 2000);
    return () => {
      stop = true;
      clearInterval(timer);
    };
  }, [vm.id]);
  useEffect(() => {
    const el = pre.current;
    if (el) el.scrollTop = el.scrollHeight;
  }, [text]);
  return (
    <div class="serial">
      {error && <div class="task-error">{error}</div>}
      <pre class="serial-log" ref={pre}>
        {text || '(no output yet)'}
      </pre>
    </div>
  );
}
