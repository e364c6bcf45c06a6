// One host: what it runs, how its status came to be, its watch, and its findings grouped by the
// change set that explains them, each with its triage state, and the forms the role may use.
import type { AuditEntry, HostDetail, HostFinding } from '../../shared/api.js';
import type { SessionUser, StatusChange } from '../store/types.js';
import { diffLines, groupByChangeSet, nestedPaths, visible } from './host-view.js';
import { Csrf, Layout } from './layout.js';
import { mayTriage } from './session.js';
import { WaiveForm } from './waive.js';

const STATUS_CAUSE_TEXT: Record<StatusChange['cause'], string> = {
  report: 'a report',
  hello: "the agent's hello",
  labels: 'a change of labels',
  approval: 'an approval',
  reopen: 'a re-open',
  rebaseline: 'a re-baseline',
  rules: 'a change of rules',
  expiry: 'an approval expiring',
  stale: 'no report for too long',
  migration: 'the history starting',
};

function Diff(props: { diff: string }) {
  return (
    <pre class="diff" aria-label="Unified diff">
      {diffLines(props.diff).map((l) => (
        <span class={l.kind}>{`${visible(l.text)}\n`}</span>
      ))}
    </pre>
  );
}

function ApproveForm(props: { session: SessionUser; action: string; label: string; id: string }) {
  return (
    <details>
      <summary>{props.label}</summary>
      <form method="post" action={props.action}>
        <Csrf session={props.session} />
        <p><label for={`${props.id}-reason`}>Reason (required)</label><br /><textarea id={`${props.id}-reason`} name="reason" required maxlength={16384} rows={2} cols={40}></textarea></p>
        <p><label for={`${props.id}-ticket`}>Ticket</label><br /><input id={`${props.id}-ticket`} name="ticket" maxlength={200} /></p>
        <p><label for={`${props.id}-expires`}>Expires (ISO date-time, optional)</label><br /><input id={`${props.id}-expires`} name="expiresAt" placeholder="2026-12-31T00:00:00Z" maxlength={40} /></p>
        <button type="submit">Approve</button>
      </form>
    </details>
  );
}

function FindingRow(props: { f: HostFinding; host: string; image: string | null; session: SessionUser }) {
  const { f } = props;
  const nested = nestedPaths(f);
  const diff = f.configDiff;
  const t = f.triage;
  return (
    <li>
      <strong>{f.severity}</strong> {f.kind} <code>{visible(f.name ?? f.path ?? '')}</code>
      {f.ecosystem !== null && ` (${f.ecosystem})`} — <span class={t.state === 'open' ? 'pet' : 'cattle'}>{t.state}</span>
      {t.approval !== null && ` by ${visible(t.approval.by)}: ${visible(t.approval.reason)}${t.approval.ticket === null ? '' : ` [${visible(t.approval.ticket)}]`}${t.approval.expiresAt === null ? '' : ` until ${t.approval.expiresAt}`}`}
      {t.waiver !== null && ` (rule ${visible(t.waiver.rule)}: ${t.waiver.action})`}
      {nested.paths.length > 0 && (
        <details>
          <summary>{`${nested.paths.length + nested.more} files`}</summary>
          <ul>{nested.paths.map((p) => <li><code>{visible(p)}</code></li>)}{nested.more > 0 && <li>{`… and ${nested.more} more`}</li>}</ul>
        </details>
      )}
      {diff !== undefined && <Diff diff={diff} />}
      {f.configDiffNote !== undefined && <p>{visible(f.configDiffNote)}</p>}
      {mayTriage(props.session.role) && f.resolvedAt === null && (t.state === 'open' || t.state === 'approval-expired') && (
        <ApproveForm session={props.session} action={`/hosts/${encodeURIComponent(props.host)}/findings/${f.id}/approve`} label="Approve this finding" id={`f${f.id}`} />
      )}
      {mayTriage(props.session.role) && f.resolvedAt === null && t.state === 'open' && <WaiveForm session={props.session} host={props.host} image={props.image} f={f} />}
      {mayTriage(props.session.role) && t.state === 'approved' && (
        <form method="post" action={`/hosts/${encodeURIComponent(props.host)}/findings/${f.id}/reopen`}>
          <Csrf session={props.session} />
          <label for={`r${f.id}`}>Reason to re-open</label> <input id={`r${f.id}`} name="reason" required maxlength={16384} /> <button type="submit">Re-open</button>
        </form>
      )}
    </li>
  );
}

export function HostPage(props: { session: SessionUser; host: HostDetail; findings: HostFinding[]; findingsPage?: { page: number; pages: number; total: number }; statusHistory?: StatusChange[]; history: AuditEntry[]; notice?: string }) {
  const h = props.host;
  const id = encodeURIComponent(h.id);
  const s = props.session;
  return (
    <Layout title={`Host ${visible(h.displayName)}`} session={s}>
      {props.notice !== undefined && <p class="note" role="status">{visible(props.notice)}</p>}
      <dl>
        <dt>Status</dt><dd class={h.status} id="status">{h.status}</dd>
        <dt>Image</dt><dd>{h.image === null ? 'not announced' : visible(`${h.image.name} ${h.image.version}`)}{h.baselineVersion !== null && ` (re-baseline version ${h.baselineVersion})`}</dd>
        <dt>Pet since</dt><dd>{h.petSince ?? '—'}</dd>
        <dt>Watch</dt><dd>{h.watch === null ? 'not reported' : h.watch.state === 'ok' ? 'ok' : visible(`degraded: ${h.watch.reason ?? ''}`)}</dd>
        <dt>Last report</dt><dd>{h.lastReportAt ?? 'never'} ({h.reports} reports, agent {h.connected ? 'connected' : 'not connected'})</dd>
        <dt>Open findings</dt><dd>{`${h.openFindings} (critical ${h.counts.critical}, high ${h.counts.high}, medium ${h.counts.medium}, low ${h.counts.low})`}</dd>
      </dl>
      {mayTriage(s.role) && (
        <section aria-label="Host actions">
          <form method="post" action={`/hosts/${id}/scan-now`}><Csrf session={s} /><button type="submit">Scan now</button></form>
          <details>
            <summary>Re-baseline (accept every open change)</summary>
            <form method="post" action={`/hosts/${id}/rebaseline`}>
              <Csrf session={s} />
              <p><label for="rb-reason">Reason (required)</label><br /><input id="rb-reason" name="reason" required maxlength={16384} /></p>
              <p><label for="rb-ticket">Ticket</label><br /><input id="rb-ticket" name="ticket" maxlength={200} /></p>
              <button type="submit">Re-baseline</button>
            </form>
          </details>
        </section>
      )}
      <h2>Findings by change set</h2>
      {props.findings.length === 0 && <p>No open findings.</p>}
      {groupByChangeSet(props.findings).map((g) => (
        <section class="changeset" aria-label={g.id === null ? 'Not explained by a package manager' : `Change set ${g.id}`}>
          <h3>{g.id === null ? 'Not explained by a package manager' : visible(`${g.tool ?? 'change set'}: ${g.command ?? g.id}`)}</h3>
          {g.id !== null && mayTriage(s.role) && <ApproveForm session={s} action={`/hosts/${id}/change-sets/${encodeURIComponent(g.id)}/approve`} label="Approve the whole change set" id={`cs-${g.findings[0]!.id}`} />}
          <ul>{g.findings.map((f) => <FindingRow f={f} host={h.id} image={h.image?.name ?? null} session={s} />)}</ul>
        </section>
      ))}
      {props.findingsPage !== undefined && props.findingsPage.pages > 1 && (
        <nav aria-label="Pages of findings">
          {props.findingsPage.page > 1 && <a href={`/hosts/${id}?page=${props.findingsPage.page - 1}`} rel="prev">Previous</a>}
          {` Findings page ${props.findingsPage.page} of ${props.findingsPage.pages} (${props.findingsPage.total} open) `}
          {props.findingsPage.page < props.findingsPage.pages && <a href={`/hosts/${id}?page=${props.findingsPage.page + 1}`} rel="next">Next</a>}
        </nav>
      )}
      <h2>Status history</h2>
      {(props.statusHistory ?? []).length === 0 && <p>No change of status recorded.</p>}
      <ul aria-label="Status changes">
        {(props.statusHistory ?? []).map((e) => <li>{`${e.at}: ${e.from === null ? `${e.to} (known since the history began)` : `${e.from} → ${e.to}`}, by ${STATUS_CAUSE_TEXT[e.cause]}${e.actor === null ? '' : ` (${visible(e.actor)})`}`}</li>)}
      </ul>
      <h2>Who decided what</h2>
      {props.history.length === 0 && <p>No triage of this host yet.</p>}
      <ul aria-label="Triage acts">
        {props.history.map((e) => <li>{`${e.at}: ${e.action} by ${visible(e.actorName ?? e.actor)} (${e.role})${e.reason === null ? '' : ` — ${visible(e.reason)}`}`}</li>)}
      </ul>
    </Layout>
  );
}
