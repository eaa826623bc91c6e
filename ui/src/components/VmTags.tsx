import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError, apiFull, type Vm } from '../api';
import { refreshVms, toast } from '../store';
import { chipTags, parseTags, sameTags, TAG_RULE, tagsPatch, tagsText } from '../tags';

/** A VM's tags as chips ('none' when it has none, unless `quiet`); `max` shows the first ones and "+N". */
export function TagChips({ tags, max, quiet }: { tags?: string[]; max?: number; quiet?: boolean }) {
  const { shown, more } = chipTags(tags, max ?? Number.POSITIVE_INFINITY);
  if (shown.length === 0) return quiet ? null : <span class="muted">none</span>;
  return (
    <span class="vm-tags" title={more ? (tags ?? []).join(', ') : undefined}>
      {shown.map((t) => (
        <span key={t} class="tag vm-tag" data-tag={t}>
          {t}
        </span>
      ))}
      {more > 0 && <span class="muted tags-more">+{more}</span>}
    </span>
  );
}

/**
 * The Tags row of the VM page: its chips and Edit tags, which opens an input (a comma- or space-separated
 * list, checked as typed) in place. The VM is read with its ETag when the input opens and the tags are
 * sent with If-Match: when the VM changed meanwhile but not its tags (it started, say), they are sent
 * again on its new copy; when its tags changed, the input says so and shows them.
 */
export function VmTagsField({ vm }: { vm: Vm }) {
  const [open, setOpen] = useState(false);
  const [loaded, setLoaded] = useState<{ tags?: string[]; etag?: string } | undefined>();
  const [text, setText] = useState('');
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);

  useEffect(() => {
    if (!open) return;
    let live = true;
    setLoaded(undefined);
    setError('');
    apiFull<Vm>('GET', `/vms/${vm.id}`)
      .then(({ data, etag }) => {
        if (!live) return;
        setLoaded({ tags: data.tags, etag });
        setText(tagsText(data.tags));
        setTimeout(() => input.current?.focus());
      })
      .catch((e) => live && setError((e as Error).message));
    return () => {
      live = false;
    };
  }, [open, vm.id]);

  const { problem } = parseTags(text);

  async function save(e: Event) {
    e.preventDefault();
    if (!loaded || problem) return;
    const body = tagsPatch(loaded.tags, text);
    if (!body) return;
    if (!body.tags) {
      setOpen(false);
      return;
    }
    setBusy(true);
    setError('');
    try {
      const send = (etag?: string) =>
        apiFull<Vm>('PATCH', `/vms/${vm.id}`, body, etag ? { 'if-match': etag } : {});
      try {
        await send(loaded.etag);
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 412)) throw err;
        // changed since it was read: its tags too, or only the rest of it?
        const now = await apiFull<Vm>('GET', `/vms/${vm.id}`);
        if (!sameTags(now.data.tags, loaded.tags)) {
          setLoaded({ tags: now.data.tags, etag: now.etag });
          setError(
            `Its tags changed meanwhile: now ${tagsText(now.data.tags) || 'none'}. Save again to replace them.`,
          );
          return;
        }
        await send(now.etag);
      }
      const tags = body.tags;
      toast(tags.length ? `Tags of ${vm.name}: ${tags.join(', ')}` : `Tags of ${vm.name} removed`, 'info');
      setOpen(false);
      await refreshVms().catch(() => {});
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }

  if (!open)
    return (
      <>
        <TagChips tags={vm.tags} />{' '}
        <button
          type="button"
          class="link"
          data-action="edit-tags"
          title="Labels that group VMs: backup jobs can back up the VMs carrying a tag"
          onClick={() => setOpen(true)}
        >
          Edit tags
        </button>
      </>
    );
  return (
    <form class="inline-form tags-form" noValidate onSubmit={save}>
      <input
        ref={input}
        name="tags"
        class={`mono${problem ? ' invalid' : ''}`}
        value={text}
        placeholder="env:prod, nightly"
        disabled={!loaded}
        aria-label={`Tags of ${vm.name}`}
        onInput={(e) => setText((e.target as HTMLInputElement).value)}
        onKeyDown={(e) => e.key === 'Escape' && setOpen(false)}
      />{' '}
      <button type="submit" class="primary" disabled={!loaded || !!problem || busy}>
        {busy ? 'Saving…' : 'Save'}
      </button>{' '}
      <button type="button" onClick={() => setOpen(false)}>
        Cancel
      </button>
      {problem ? (
        <div class="field-error" data-field="tags">
          {problem}
        </div>
      ) : (
        <div class="hint">
          Comma- or space-separated; {TAG_RULE}. Empty removes them. Backup jobs can select VMs by tag.
        </div>
      )}
      {error && (
        <div class="form-error" role="alert">
          {error}
        </div>
      )}
    </form>
  );
}
