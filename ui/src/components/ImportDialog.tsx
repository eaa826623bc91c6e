import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, api, fmtBytes, type Task, uploadFile } from '../api';
import {
  cpuLine,
  DEFAULT_IMPORT_FORM,
  DEVICE_MODES,
  type DeviceMode,
  diskLine,
  firmwareLine,
  formProblem,
  guessKind,
  type ImportForm,
  type ImportPlan,
  importBody,
  importDetails,
  importProgress,
  importResult,
  mappedNetwork,
  nicLine,
  ovfNetworks,
  planNotes,
  type SourceKind,
  sourceProblem,
  takenName,
  uploadName,
} from '../imports';
import { go } from '../route';
import { putTask, refreshAll, sinceTaskEvent, toast, useStore } from '../store';
import { Meter } from './Meter';
import { NetworkOptions, useNetworks } from './NetworkOptions';

type Step = 'source' | 'review' | 'import';

const STEPS: [Step, string][] = [
  ['source', 'Source'],
  ['review', 'Review'],
  ['import', 'Import'],
];

/** Wait this long after the last change of the review's choices before checking them again (ms). */
const RECHECK_MS = 500;
/** A running import without a task event for this long is fetched instead (ms). */
const QUIET_MS = 3000;

type Source = { path: string } | { url: string };

/**
 * Import from VMware, in three steps. Source: an OVA or VMDK uploaded from the browser (POST
 * /imports/files), a file on the host, or an http(s) URL. Review: the API's plan (POST /imports/inspect):
 * the source's OS and firmware and what is not brought across, the hardware as it is mapped, the files
 * checked against the manifest, the notes; the name, pool, device models and network mapping (onto any
 * network of GET /networks) can be changed, and each change is checked again (the API's refusal
 * inline). Import: a vm.import task that converts the disks (bytes converted shown here and in Recent
 * tasks); the new VM opens when it is done.
 */
/** Deletes an upload that will not be imported; a failure leaves it (it is only disk space). */
function discardUpload(path: string): void {
  api('DELETE', `/imports/files?${new URLSearchParams({ path })}`).catch(() => {});
}

export function ImportDialog({ onClose }: { onClose: () => void }) {
  const s = useStore();
  const [step, setStep] = useState<Step>('source');
  const [kind, setKind] = useState<SourceKind>('upload');
  const [file, setFile] = useState<File | undefined>();
  const [path, setPath] = useState('');
  const [url, setUrl] = useState('');
  const [uploaded, setUploaded] = useState<{ file: File; path: string } | undefined>();
  const [sent, setSent] = useState<{ done: number; total: number } | undefined>();
  const [source, setSource] = useState<Source | undefined>();
  const [plan, setPlan] = useState<ImportPlan | undefined>();
  const [f, setF] = useState<ImportForm>(DEFAULT_IMPORT_FORM);
  const networks = useNetworks();
  const [start, setStart] = useState(false);
  const [pools, setPools] = useState<string[]>(['local']);
  const [checking, setChecking] = useState(false);
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const [taskId, setTaskId] = useState('');
  const upload = useRef<AbortController | undefined>();
  /** Answers to older checks than the last are dropped. */
  const seq = useRef(0);
  /** The body of the last check asked for: the review checks again when its choices make another. */
  const checked = useRef('');

  useEffect(() => {
    api<{ name: string }[]>('GET', '/pools')
      .then((all) => setPools(all.map((p) => p.name)))
      .catch(() => {});
    return () => upload.current?.abort();
  }, []);

  const sourceName = source ? ('path' in source ? source.path : source.url) : '';
  const reviewKind = plan?.kind ?? guessKind(sourceName);
  const body = source && step === 'review' ? importBody(source, f, reviewKind) : undefined;
  const key = body ? JSON.stringify(body) : '';
  const problem = step === 'review' ? formProblem(f, reviewKind) : '';
  const stale = step === 'review' && !problem && key !== checked.current;

  async function inspect(b: Record<string, unknown>, k: string) {
    const n = ++seq.current;
    checked.current = k;
    setChecking(true);
    try {
      const p = await api<ImportPlan>('POST', '/imports/inspect', b);
      if (n !== seq.current) return;
      setPlan(p);
      setError('');
    } catch (err) {
      if (n !== seq.current) return;
      setError((err as Error).message);
    } finally {
      if (n === seq.current) setChecking(false);
    }
  }

  useEffect(() => {
    if (!body || problem || key === checked.current) return;
    const t = setTimeout(() => inspect(body, key), RECHECK_MS);
    return () => clearTimeout(t);
  }, [key, problem]);

  async function next(e: Event) {
    e.preventDefault();
    const bad = sourceProblem(kind, { file, path, url });
    if (bad) {
      setError(bad);
      return;
    }
    setError('');
    setBusy(true);
    try {
      let src: Source;
      if (kind === 'upload' && file) {
        let stored = uploaded?.file === file ? uploaded.path : undefined;
        if (!stored) {
          if (uploaded) discardUpload(uploaded.path); // another file now: the first is not imported
          upload.current = new AbortController();
          setSent({ done: 0, total: file.size });
          const q = new URLSearchParams({ filename: uploadName(file.name) });
          stored = (
            await uploadFile<{ path: string }>(
              `/imports/files?${q}`,
              file,
              (done, total) => setSent({ done, total }),
              upload.current.signal,
            )
          ).path;
          setUploaded({ file, path: stored });
        }
        src = { path: stored };
      } else src = kind === 'url' ? { url: url.trim() } : { path: path.trim() };
      ++seq.current;
      const form = { ...DEFAULT_IMPORT_FORM, pool: f.pool, devices: f.devices };
      try {
        const p = await api<ImportPlan>('POST', '/imports/inspect', importBody(src, form));
        const next = { ...form, name: p.name, pool: p.pool };
        checked.current = JSON.stringify(importBody(src, next, p.kind));
        setPlan(p);
        setF(next);
      } catch (err) {
        // the OVF's own name is taken, or the pool is too small: mended in the review
        if (!(err instanceof ApiError && ['already_exists', 'insufficient_resources'].includes(err.code)))
          throw err;
        const next = { ...form, name: takenName(err.message) ?? '' };
        const k = guessKind('path' in src ? src.path : src.url);
        checked.current = JSON.stringify(importBody(src, next, k));
        setPlan(undefined);
        setF(next);
        setError(err.message);
      }
      setSource(src);
      setStep('review');
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
      setSent(undefined);
    }
  }

  async function doImport(e: Event) {
    e.preventDefault();
    if (!body || problem) return;
    setBusy(true);
    setError('');
    try {
      const task = await api<Task>('POST', '/imports', { ...body, start });
      putTask(task);
      setTaskId(task.id);
      setStep('import');
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  const task = taskId ? s.tasks.find((t) => t.id === taskId) : undefined;
  const running = task?.status === 'running';
  const details = task && importDetails(task);
  const result = task && importResult(task);

  // the task's events drive its progress; fetch it when they stop (the event stream is down)
  useEffect(() => {
    if (!taskId || !running) return;
    const timer = setInterval(() => {
      if (document.hidden || sinceTaskEvent(taskId) < QUIET_MS) return;
      api<Task>('GET', `/tasks/${encodeURIComponent(taskId)}`)
        .then(putTask)
        .catch(() => {});
    }, 2000);
    return () => clearInterval(timer);
  }, [taskId, running]);

  // done: open the new VM
  const opened = useRef(false);
  useEffect(() => {
    if (task?.status !== 'ok' || !result || opened.current) return;
    opened.current = true;
    toast(`VM ${result.name} imported${start ? ' and started' : ''}`, 'info');
    refreshAll()
      .catch(() => {})
      .then(() => {
        onClose();
        go(`/vms/${result.vm}`);
      });
  }, [task?.status, result?.vm]);

  const setField =
    <K extends keyof ImportForm>(k: K) =>
    (e: Event) =>
      setF({ ...f, [k]: (e.target as HTMLInputElement).value as ImportForm[K] });
  const setNetwork = (net: string, to: string) => setF({ ...f, networkMap: { ...f.networkMap, [net]: to } });
  const stepIndex = STEPS.findIndex(([k]) => k === step);

  return (
    <div class="modal-backdrop">
      <form
        class="modal import-dialog"
        role="dialog"
        aria-label="Import from VMware"
        data-step={step}
        noValidate
        onSubmit={step === 'source' ? next : step === 'review' ? doImport : (e) => e.preventDefault()}
      >
        <h3>Import from VMware</h3>
        <ol class="wizard-steps">
          {STEPS.map(([k, label], i) => (
            <li key={k} data-step={k} class={i === stepIndex ? 'active' : i < stepIndex ? 'done' : ''}>
              {i + 1}. {label}
            </li>
          ))}
        </ol>

        {step === 'source' && (
          <div class="modal-body form import-source">
            <p class="hint">
              An OVA (vSphere's Export OVF Template, or ovftool), an OVF with its VMDKs beside it, or a single
              VMDK. Its hardware is mapped to NeuroFlow's and shown before anything is made.
            </p>
            <label class="check">
              <input
                type="radio"
                name="sourceKind"
                value="upload"
                checked={kind === 'upload'}
                onChange={() => setKind('upload')}
              />
              Upload an OVA or VMDK from this computer
            </label>
            {kind === 'upload' && (
              <label>
                File
                <input
                  type="file"
                  name="file"
                  accept=".ova,.vmdk"
                  disabled={busy}
                  onChange={(e) => setFile((e.target as HTMLInputElement).files?.[0])}
                />
              </label>
            )}
            <label class="check">
              <input
                type="radio"
                name="sourceKind"
                value="path"
                checked={kind === 'path'}
                onChange={() => setKind('path')}
              />
              A file on the host
            </label>
            {kind === 'path' && (
              <label>
                Path
                <input
                  name="path"
                  class="mono"
                  placeholder="/srv/exports/web01.ova"
                  value={path}
                  onInput={(e) => setPath((e.target as HTMLInputElement).value)}
                />
                <span class="hint">
                  An OVA, an OVF (its disks beside it) or a VMDK, in a directory the host allows (serve
                  --host-path DIR)
                </span>
              </label>
            )}
            <label class="check">
              <input
                type="radio"
                name="sourceKind"
                value="url"
                checked={kind === 'url'}
                onChange={() => setKind('url')}
              />
              Download from a URL
            </label>
            {kind === 'url' && (
              <label>
                URL
                <input
                  name="url"
                  class="mono"
                  placeholder="https://files.example.com/web01.ova"
                  value={url}
                  onInput={(e) => setUrl((e.target as HTMLInputElement).value)}
                />
                <span class="hint">The host downloads it for each check and again for the import</span>
              </label>
            )}
            {sent && file && (
              <div class="upload-progress" data-testid="upload-progress">
                Uploading {file.name}: {fmtBytes(sent.done)} of {fmtBytes(sent.total)}
                <Meter value={sent.total > 0 ? sent.done / sent.total : 0} warn={2} />
              </div>
            )}
          </div>
        )}

        {step === 'review' && (
          <div class="modal-body form import-review">
            {plan && (
              <dl class="plan-source">
                <dt>Source</dt>
                <dd>
                  {plan.kind.toUpperCase()}{' '}
                  <span class="mono">
                    {kind === 'upload' && uploaded ? uploaded.file.name : sourceName.split('/').pop()}
                  </span>
                </dd>
                <dt>Guest OS</dt>
                <dd class="plan-os">
                  {plan.source.osType}
                  {plan.source.windows ? ' (Windows)' : ''}
                </dd>
                <dt>Firmware</dt>
                <dd>{firmwareLine(plan.source)}</dd>
                <dt>Not brought across</dt>
                <dd class="plan-ignored">
                  {plan.source.ignored.length > 0 ? plan.source.ignored.join(', ') : 'nothing'}
                </dd>
              </dl>
            )}
            <div class="form-row">
              <label>
                Name
                <input name="name" value={f.name} onInput={setField('name')} />
              </label>
              <label>
                Storage pool
                <select name="pool" value={f.pool} onChange={setField('pool')}>
                  {(pools.includes(f.pool) ? pools : [f.pool, ...pools]).map((p) => (
                    <option key={p} value={p}>
                      {p}
                    </option>
                  ))}
                </select>
              </label>
            </div>
            <label>
              Disk and NIC models
              <select
                name="devices"
                value={f.devices}
                onChange={(e) => setF({ ...f, devices: (e.target as HTMLSelectElement).value as DeviceMode })}
              >
                {DEVICE_MODES.map(([v, l]) => (
                  <option key={v} value={v}>
                    {l}
                  </option>
                ))}
              </select>
            </label>
            {reviewKind === 'vmdk' && (
              <div class="form-row">
                <label>
                  vCPU
                  <input name="vcpus" type="number" min={1} value={f.vcpus} onInput={setField('vcpus')} />
                </label>
                <label>
                  Memory (MiB)
                  <input
                    name="memoryMiB"
                    type="number"
                    min={16}
                    step={16}
                    value={f.memoryMiB}
                    onInput={setField('memoryMiB')}
                  />
                </label>
              </div>
            )}
            {plan && ovfNetworks(plan).length > 0 && (
              <fieldset class="network-map">
                <legend>Networks</legend>
                {ovfNetworks(plan).map((net) => (
                  <label key={net} class="network-row">
                    <span>
                      OVF network <b>{net}</b> →
                    </span>
                    <select
                      name="network"
                      data-ovf-network={net}
                      value={mappedNetwork(plan, f, net)}
                      onChange={(e) => setNetwork(net, (e.target as HTMLSelectElement).value)}
                    >
                      <NetworkOptions networks={networks} value={mappedNetwork(plan, f, net)} />
                    </select>
                  </label>
                ))}
              </fieldset>
            )}
            {!plan && (
              <p class="hint no-plan">
                The package was checked; what the import makes shows once the choices above are accepted.
              </p>
            )}
            {plan && (
              <div class={`plan ${error || stale || checking ? 'stale' : ''}`}>
                <h4>Hardware of the new VM</h4>
                <dl class="plan-hardware">
                  <dt>CPU</dt>
                  <dd class="plan-cpu">{cpuLine(plan.vm)}</dd>
                  <dt>Memory</dt>
                  <dd class="plan-memory">{plan.vm.memoryMiB} MiB</dd>
                  <dt>Firmware</dt>
                  <dd class="plan-firmware">
                    {firmwareLine(plan.vm)}, machine {plan.vm.machine}
                  </dd>
                  <dt>Disks</dt>
                  <dd>
                    <ul class="plan-list">
                      {plan.vm.disks.map((d) => (
                        <li key={d.label} class="plan-disk">
                          {diskLine(d)}
                        </li>
                      ))}
                    </ul>
                    <span class="hint">into pool {plan.pool}</span>
                  </dd>
                  <dt>NICs</dt>
                  <dd>
                    {plan.vm.networks.length === 0 && <span class="muted">none</span>}
                    <ul class="plan-list">
                      {plan.vm.networks.map((n) => (
                        <li key={n.label} class="plan-nic">
                          {nicLine(n)}
                        </li>
                      ))}
                    </ul>
                  </dd>
                  <dt>Verified</dt>
                  <dd>
                    {Object.keys(plan.verified).length === 0 ? (
                      <span class="muted plan-unverified">no manifest: nothing checked</span>
                    ) : (
                      <ul class="plan-list">
                        {Object.entries(plan.verified).map(([file, algo]) => (
                          <li key={file} class="plan-verified" data-file={file}>
                            ✓ <span class="mono">{file}</span> ({algo})
                          </li>
                        ))}
                      </ul>
                    )}
                  </dd>
                </dl>
                {planNotes(plan).length > 0 && (
                  <ul class="plan-notes">
                    {planNotes(plan).map((n) => (
                      <li key={n} class="hint">
                        {n}
                      </li>
                    ))}
                  </ul>
                )}
              </div>
            )}
            <label class="check">
              <input
                name="start"
                type="checkbox"
                checked={start}
                onChange={(e) => setStart((e.target as HTMLInputElement).checked)}
              />{' '}
              Start after import
            </label>
            {(checking || stale) && <span class="muted checking">Checking…</span>}
          </div>
        )}

        {step === 'import' && (
          <div class="modal-body import-progress" data-status={task?.status ?? 'running'}>
            <p>
              Importing <b>{f.name}</b>: its disks are converted into pool {f.pool}.
            </p>
            {running && details && (
              <div data-testid="import-progress">
                {importProgress(details)}
                <Meter value={task?.progress ?? 0} warn={2} />
              </div>
            )}
            {task?.status === 'ok' && <p>Imported; opening {result?.name ?? 'the VM'}…</p>}
            {task?.status === 'error' && result && (
              <p class="hint">
                VM {result.name} was made; starting it failed.{' '}
                <button
                  type="button"
                  class="link"
                  onClick={() => {
                    onClose();
                    go(`/vms/${result.vm}`);
                  }}
                >
                  Open {result.name}
                </button>
              </p>
            )}
            {running && <p class="hint">You can close this: the import goes on in Recent tasks.</p>}
          </div>
        )}

        {(step !== 'review' || !problem) && error && (
          <div class="form-error" role="alert">
            {error}
          </div>
        )}
        {step === 'import' && task?.error && (
          <div class="form-error" role="alert">
            {task.error.message}
          </div>
        )}
        {step === 'review' && problem && (
          <div class="form-error" role="alert">
            {problem}
          </div>
        )}
        <div class="modal-actions">
          {step === 'review' && (
            <button
              type="button"
              disabled={busy}
              onClick={() => {
                setStep('source');
                setError('');
              }}
            >
              Back
            </button>
          )}
          <button
            type="button"
            onClick={() => {
              // cancelled before the import: the upload goes (an import deletes its upload itself)
              if (step !== 'import' && uploaded) discardUpload(uploaded.path);
              onClose();
            }}
          >
            {step === 'import' ? 'Close' : 'Cancel'}
          </button>
          {step === 'source' && (
            <button type="submit" class="primary" disabled={busy}>
              {sent ? 'Uploading…' : busy ? 'Checking…' : 'Next'}
            </button>
          )}
          {step === 'review' && (
            <button
              type="submit"
              class="primary"
              disabled={busy || checking || stale || !!problem || !!error}
            >
              {busy ? 'Checking the package…' : 'Import'}
            </button>
          )}
        </div>
      </form>
    </div>
  );
}
