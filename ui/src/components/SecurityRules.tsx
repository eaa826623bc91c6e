import { useState } from 'preact/hooks';
import { api } from '../api';
import {
  hasPorts,
  NEW_RULE_ROW,
  PROTOCOLS,
  type RuleRow,
  ruleFromRow,
  ruleProblem,
  ruleRow,
  type SecurityGroup,
  sameRules,
} from '../security-groups';
import { toast } from '../store';
import { FormActions } from './FormActions';

/**
 * A security group's rules as editable rows (direction, protocol, ports, the other side: anywhere, a CIDR
 * or a group, action, log); each row checked as typed; Save sends them all (PATCH rules), the API's
 * refusal inline.
 */
export function SecurityRules(props: {
  group: SecurityGroup;
  /** The names of every group (a rule's remote group is one of them). */
  groups: string[];
  onSaved: (g: SecurityGroup) => void;
}) {
  const { group } = props;
  const [rows, setRows] = useState<RuleRow[]>(group.rules.map(ruleRow));
  const [error, setError] = useState('');
  const [busy, setBusy] = useState(false);
  const problems = rows.map((r) => ruleProblem(r, props.groups));
  const rules = rows.map(ruleFromRow);
  const dirty = !sameRules(rules, group.rules);
  const bad = problems.some(Boolean);
  async function save(e: Event) {
    e.preventDefault();
    if (!dirty || bad) return;
    setBusy(true);
    setError('');
    try {
      const g = await api<SecurityGroup>('PATCH', `/security-groups/${encodeURIComponent(group.name)}`, {
        rules,
      });
      toast(`security group ${g.name}: ${g.rules.length} rule(s) saved`, 'info');
      props.onSaved(g);
    } catch (err) {
      setError((err as Error).message);
    } finally {
      setBusy(false);
    }
  }
  return (
    <form class="form sg-rules" noValidate onSubmit={save}>
      <h4>Rules</h4>
      <p class="hint">
        What the members' NICs receive (in) and send (out): everything else is dropped; replies to allowed
        flows pass. {group.admin ? "This admin group's rules come before every other group's." : ''}
      </p>
      <RuleRows rows={rows} setRows={setRows} groups={props.groups} />
      <FormActions
        error={error}
        busy={busy}
        label="Save rules"
        busyLabel="Saving…"
        onCancel={() => {
          setRows(group.rules.map(ruleRow));
          setError('');
        }}
        disabled={!dirty || bad}
        testId="save-rules"
      />
    </form>
  );
}

/**
 * The rules as editable rows with Add rule and Remove, each row checked as typed (its problem below the
 * table): the rules editor of a group and of the Add security group dialog.
 */
export function RuleRows({
  rows,
  setRows,
  groups,
}: {
  rows: RuleRow[];
  setRows: (rows: RuleRow[]) => void;
  groups: string[];
}) {
  const problems = rows.map((r) => ruleProblem(r, groups));
  const set = (i: number, change: Partial<RuleRow>) =>
    setRows(rows.map((r, j) => (j === i ? { ...r, ...change } : r)));
  const value = (e: Event) => (e.target as HTMLInputElement).value;
  return (
    <>
      {rows.length === 0 && <p class="muted">No rules: the members receive and send nothing.</p>}
      {rows.length > 0 && (
        <table class="grid rules">
          <thead>
            <tr>
              <th>Direction</th>
              <th>Protocol</th>
              <th>Ports</th>
              <th>Remote</th>
              <th>Action</th>
              <th>Log</th>
              <th />
            </tr>
          </thead>
          <tbody>
            {rows.map((r, i) => (
              <tr key={i} data-rule={i} class={problems[i] ? 'invalid' : undefined}>
                <td>
                  <select
                    name="direction"
                    value={r.direction}
                    onChange={(e) => set(i, { direction: value(e) as RuleRow['direction'] })}
                  >
                    <option value="in">in</option>
                    <option value="out">out</option>
                  </select>
                </td>
                <td>
                  <select
                    name="protocol"
                    value={r.protocol}
                    onChange={(e) => set(i, { protocol: value(e) as RuleRow['protocol'] })}
                  >
                    {PROTOCOLS.map((p) => (
                      <option key={p} value={p}>
                        {p}
                      </option>
                    ))}
                  </select>
                </td>
                <td>
                  <input
                    name="ports"
                    class="mono"
                    size={11}
                    value={hasPorts(r.protocol) ? r.ports : ''}
                    disabled={!hasPorts(r.protocol)}
                    placeholder={hasPorts(r.protocol) ? 'every port' : '—'}
                    autoComplete="off"
                    onInput={(e) => set(i, { ports: value(e) })}
                  />
                </td>
                <td class="rule-remote">
                  <select
                    name="remoteKind"
                    value={r.remoteKind}
                    onChange={(e) => set(i, { remoteKind: value(e) as RuleRow['remoteKind'] })}
                  >
                    <option value="any">anywhere</option>
                    <option value="cidr">CIDR</option>
                    <option value="group">group</option>
                  </select>{' '}
                  {r.remoteKind === 'cidr' && (
                    <input
                      name="remote"
                      class="mono"
                      size={16}
                      value={r.remote}
                      placeholder="10.0.0.0/8"
                      autoComplete="off"
                      onInput={(e) => set(i, { remote: value(e) })}
                    />
                  )}
                  {r.remoteKind === 'group' && (
                    <select
                      name="remoteGroup"
                      value={r.remoteGroup}
                      onChange={(e) => set(i, { remoteGroup: value(e) })}
                    >
                      <option value="">pick a group…</option>
                      {groups.map((g) => (
                        <option key={g} value={g}>
                          {g}
                        </option>
                      ))}
                    </select>
                  )}
                </td>
                <td>
                  <select
                    name="action"
                    value={r.action}
                    onChange={(e) => set(i, { action: value(e) as RuleRow['action'] })}
                  >
                    <option value="allow">allow</option>
                    <option value="deny">deny</option>
                  </select>
                </td>
                <td>
                  <input
                    name="log"
                    type="checkbox"
                    checked={r.log}
                    title="Log the flows it matches (rate limited) in the hosts' OVN log"
                    onChange={(e) => set(i, { log: (e.target as HTMLInputElement).checked })}
                  />
                </td>
                <td class="row-actions">
                  <button
                    type="button"
                    class="link"
                    data-action="remove-rule"
                    onClick={() => setRows(rows.filter((_, j) => j !== i))}
                  >
                    Remove
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {problems.map(
        (p, i) =>
          p && (
            <span key={i} class="field-error" data-field="rule" data-rule-error={i}>
              Rule {i + 1}: {p}
            </span>
          ),
      )}
      <div>
        <button type="button" data-action="add-rule" onClick={() => setRows([...rows, { ...NEW_RULE_ROW }])}>
          Add rule
        </button>
      </div>
    </>
  );
}
