import { useState } from 'preact/hooks';
import { api } from '../api';
import { when } from '../format';
import { usePolled } from '../poll';
import { go } from '../route';
import {
  DEFAULT_RULES,
  DESCRIPTION_MAX,
  EMPTY_GROUP_FORM,
  type GroupForm,
  groupBody,
  groupProblems,
  groupReady,
  type RuleRow,
  ruleLabel,
  ruleProblem,
  ruleRow,
  type SecurityGroup,
  securityGroupHref,
} from '../security-groups';
import { toast } from '../store';
import { parseTags, tagsPatch, tagsText } from '../tags';
import { ConfirmDialog } from './ConfirmDialog';
import { FormActions } from './FormActions';
import { NetworkTabs } from './NetworkTabs';
import { RuleRows, SecurityRules } from './SecurityRules';

const none = <span class="muted">—</span>;

/**
 * Security groups: stateful firewalls on the OVN NICs of the VMs carrying one of a group's tags; add one,
 * open one (#/security-groups/<name>) to edit its description, tags and rules and see its members, delete
 * one (the API's refusal stays in the dialog).
 */
export function SecurityGroupsPage({ open }: { open?: string }) {
  const groups = usePolled<SecurityGroup[]>('/security-groups', 5000);
  const [adding, setAdding] = useState(false);
  const [remove, setRemove] = useState<{ name: string; error?: string; busy?: boolean } | undefined>();
  const list = groups.data;
  const current = list?.find((g) => g.name === open);

  async function confirmRemove() {
    if (!remove) return;
    setRemove({ ...remove, busy: true });
    try {
      await api('DELETE', `/security-groups/${encodeURIComponent(remove.name)}`);
      toast(`security group ${remove.name} deleted`, 'info');
      if (open === remove.name) go('/security-groups');
      setRemove(undefined);
      await groups.reload();
    } catch (e) {
      setRemove({ ...remove, busy: false, error: (e as Error).message });
    }
  }
  const saved = (g: SecurityGroup) => {
    groups.setData(list?.map((x) => (x.name === g.name ? g : x)));
    groups.reload();
  };

  return (
    <div class="security-groups-page">
      <div class="vm-head">
        <h2>Security groups</h2>
        <button type="button" data-action="add-group" onClick={() => setAdding(true)}>
          Add security group…
        </button>
      </div>
      <NetworkTabs active="security-groups" />
      <p class="hint">
        A group holds the NICs (on overlay and provider networks) of the VMs carrying one of its tags: they
        receive and send only what its rules allow (replies pass). A NIC in no group is not filtered. An{' '}
        <b>admin</b> group's rules come first: its deny wins over any other group's allow.
      </p>
      {groups.error && (
        <div class="form-error" role="alert">
          {groups.error}
        </div>
      )}
      {!list && !groups.error && <div class="muted">Loading…</div>}
      {list && list.length === 0 && <p class="muted">No security groups yet.</p>}
      {list && list.length > 0 && (
        <table class="grid security-groups">
          <thead>
            <tr>
              <th>Group</th>
              <th>Tags</th>
              <th>Rules</th>
              <th>Members</th>
              <th>Admin</th>
              <th>Created</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {list.map((g) => (
              <tr key={g.name} data-group={g.name} class={open === g.name ? 'open' : undefined}>
                <td>
                  <a class="group-name" href={securityGroupHref(open === g.name ? undefined : g.name)}>
                    {g.name}
                  </a>
                  {g.description && <div class="muted group-description">{g.description}</div>}
                </td>
                <td class="group-tags">
                  {g.tags.length
                    ? g.tags.map((t) => (
                        <span key={t} class="tag vm-tag">
                          {t}
                        </span>
                      ))
                    : none}
                </td>
                <td class="group-rules" title={g.rules.map(ruleLabel).join('\n')}>
                  {g.rules.length}
                </td>
                <td class="group-members" title={g.members.map((m) => `${m.vm} ${m.nic}`).join('\n')}>
                  {g.members.length}
                </td>
                <td class="group-admin">{g.admin ? <span class="tag">admin</span> : none}</td>
                <td class="muted">{when(g.createdAt)}</td>
                <td class="row-actions">
                  <button
                    type="button"
                    data-action="delete-group"
                    onClick={() => setRemove({ name: g.name })}
                  >
                    Delete
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {open && list && !current && (
        <p class="warning-text">
          No security group named {open}. <a href={securityGroupHref()}>All security groups</a>
        </p>
      )}
      {current && (
        <div class="card section group-detail" data-group-detail={current.name}>
          <h3>Security group {current.name}</h3>
          <GroupSettings
            key={`${current.description}|${current.tags.join(',')}`}
            group={current}
            onSaved={saved}
          />
          <SecurityRules
            key={JSON.stringify(current.rules)}
            group={current}
            groups={list!.map((g) => g.name)}
            onSaved={saved}
          />
          <GroupMembers group={current} />
        </div>
      )}
      {adding && (
        <AddGroupDialog
          existing={(list ?? []).map((g) => g.name)}
          onClose={() => setAdding(false)}
          onAdded={(name) => {
            groups.reload();
            go(`/security-groups/${encodeURIComponent(name)}`);
          }}
        />
      )}
      {remove && (
        <ConfirmDialog
          title={`Delete security group ${remove.name}?`}
          confirm="Delete"
          onConfirm={confirmRemove}
          onCancel={() => setRemove(undefined)}
          error={remove.error}
          busy={remove.busy}
        >
          Its members' NICs lose its rules (a NIC left in no group is not filtered). It is refused while
          another group's rules name it as their remote group.
        </ConfirmDialog>
      )}
    </div>
  );
}

/** Add security group…: name, description, tags, admin and its rules (starting as the API's default). */
function AddGroupDialog({
  existing,
  onClose,
  onAdded,
}: {
  /** The groups there are (a rule's remote group is one of them, or the new one). */
  existing: string[];
  onClose: () => void;
  onAdded: (name: string) => void;
}) {
  const [f, setF] = useState<GroupForm>(EMPTY_GROUP_FORM);
  const [rows, setRows] = useState<RuleRow[]>(DEFAULT_RULES.map(ruleRow));
  const groups = [...new Set([...existing, ...(f.name.trim() ? [f.name.trim()] : [])])].sort();
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const problems = groupProblems(f);
  const ready = groupReady(f) && rows.every((r) => !ruleProblem(r, groups));
  const set = (k: 'name' | 'description' | 'tags') => (e: Event) =>
    setF({ ...f, [k]: (e.target as HTMLInputElement).value });
  async function submit(e: Event) {
    e.preventDefault();
    if (!ready) return;
    setBusy(true);
    setError('');
    try {
      const g = await api<SecurityGroup>('POST', '/security-groups', groupBody(f, rows));
      toast(`security group ${g.name} added`, 'info');
      onAdded(g.name);
      onClose();
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  const field = (k: keyof typeof problems) =>
    problems[k] ? (
      <span class="field-error" data-field={k}>
        {problems[k]}
      </span>
    ) : undefined;
  return (
    <div class="modal-backdrop">
      <form
        class="modal add-group"
        role="dialog"
        aria-label="Add a security group"
        noValidate
        onSubmit={submit}
      >
        <h3>Add a security group</h3>
        <div class="modal-body form">
          <label>
            Name
            <input
              name="name"
              class={problems.name ? 'invalid' : undefined}
              value={f.name}
              placeholder="web"
              autoComplete="off"
              onInput={set('name')}
            />
            {field('name') ?? <span class="hint">Lowercase letters, digits and -</span>}
          </label>
          <label>
            Description (optional)
            <input
              name="description"
              class={problems.description ? 'invalid' : undefined}
              value={f.description}
              maxLength={DESCRIPTION_MAX + 20}
              autoComplete="off"
              onInput={set('description')}
            />
            {field('description')}
          </label>
          <label>
            VM tags
            <input
              name="tags"
              class={problems.tags ? 'invalid' : undefined}
              value={f.tags}
              placeholder="web, env:prod"
              autoComplete="off"
              onInput={set('tags')}
            />
            {field('tags') ?? (
              <span class="hint">The VMs carrying one of these tags are its members (comma-separated).</span>
            )}
          </label>
          <label class="check">
            <input
              name="admin"
              type="checkbox"
              checked={f.admin}
              onChange={(e) => setF({ ...f, admin: (e.target as HTMLInputElement).checked })}
            />{' '}
            Admin group: its rules come before every other group's
          </label>
          <div class="sg-rules">
            <h4>Rules</h4>
            <p class="hint">
              What the members' NICs receive (in) and send (out): everything else is dropped; replies to
              allowed flows pass.
            </p>
            <RuleRows rows={rows} setRows={setRows} groups={groups} />
          </div>
        </div>
        <FormActions
          error={error}
          busy={busy}
          label="Add group"
          busyLabel="Adding…"
          onCancel={onClose}
          disabled={!ready}
        />
      </form>
    </div>
  );
}

/** A group's description and tags: Save sends what changed (PATCH). */
function GroupSettings({ group, onSaved }: { group: SecurityGroup; onSaved: (g: SecurityGroup) => void }) {
  const [description, setDescription] = useState(group.description ?? '');
  const [tags, setTags] = useState(tagsText(group.tags));
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const tagProblem = parseTags(tags).problem;
  const descProblem =
    description.trim().length > DESCRIPTION_MAX ? `Description: at most ${DESCRIPTION_MAX} characters` : '';
  const change = {
    ...(description.trim() !== (group.description ?? '') ? { description: description.trim() } : {}),
    ...(tagsPatch(group.tags, tags) ?? {}),
  };
  const dirty = Object.keys(change).length > 0;
  async function save(e: Event) {
    e.preventDefault();
    if (!dirty || tagProblem || descProblem) return;
    setBusy(true);
    setError('');
    try {
      const g = await api<SecurityGroup>(
        'PATCH',
        `/security-groups/${encodeURIComponent(group.name)}`,
        change,
      );
      toast(`security group ${g.name} changed`, 'info');
      onSaved(g);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <form class="form group-settings" noValidate onSubmit={save}>
      <div class="form-row">
        <label>
          Description
          <input
            name="description"
            class={descProblem ? 'invalid' : undefined}
            value={description}
            autoComplete="off"
            onInput={(e) => setDescription((e.target as HTMLInputElement).value)}
          />
          {descProblem && <span class="field-error">{descProblem}</span>}
        </label>
        <label>
          VM tags
          <input
            name="tags"
            class={tagProblem ? 'invalid' : undefined}
            value={tags}
            placeholder="web, env:prod"
            autoComplete="off"
            onInput={(e) => setTags((e.target as HTMLInputElement).value)}
          />
          {tagProblem && (
            <span class="field-error" data-field="tags">
              Tags: {tagProblem}
            </span>
          )}
        </label>
      </div>
      {group.admin && <p class="hint">An admin group (set when it was made).</p>}
      <FormActions
        error={error}
        busy={busy}
        label="Save"
        busyLabel="Saving…"
        onCancel={() => {
          setDescription(group.description ?? '');
          setTags(tagsText(group.tags));
          setError('');
        }}
        disabled={!dirty || !!tagProblem || !!descProblem}
        testId="save-group"
      />
    </form>
  );
}

/** The NICs in the group now: of the VMs with one of its tags, on OVN networks. */
function GroupMembers({ group }: { group: SecurityGroup }) {
  return (
    <div class="group-members-list">
      <h4>Members</h4>
      {group.members.length === 0 ? (
        <p class="muted">
          {group.tags.length
            ? `No NICs yet: no VM tagged ${group.tags.join(' or ')} has a NIC on an overlay or provider network.`
            : 'No tags: give the group a tag and the VMs carrying it.'}
        </p>
      ) : (
        <table class="grid members">
          <thead>
            <tr>
              <th>VM</th>
              <th>NIC</th>
              <th>Network</th>
            </tr>
          </thead>
          <tbody>
            {group.members.map((m) => (
              <tr key={`${m.vmId}-${m.nic}`} data-member={`${m.vm}/${m.nic}`}>
                <td>
                  <a href={`#/vms/${m.vmId}`}>{m.vm}</a>
                </td>
                <td class="mono">{m.nic}</td>
                <td>
                  <a href={`#/networks/${encodeURIComponent(m.network)}`}>{m.network}</a>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}
