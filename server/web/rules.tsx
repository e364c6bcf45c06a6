// The rules in force, and for an admin the rules editor: the document in a textarea, checked on
// save by the API's parser, each refusal shown beside the line it names (the field marked
// aria-invalid and described by the list); saved, and audited, only when the whole is valid.
import type { Hono } from 'hono';
import { RULES_SCHEMA, emptyRuleSet } from '../../shared/rules.js';
import type { SessionUser } from '../store/types.js';
import { actor, signedInAs } from './forms.js';
import type { ConsoleDeps } from './forms.js';
import { visible } from './host-view.js';
import { Csrf, Layout } from './layout.js';
import { checkRulesText } from './rules-editor.js';
import type { RuleProblem } from './rules-editor.js';
import { signedIn } from './session.js';
import type { WebEnv } from './session.js';

/** The document's lines around a problem's line, the line itself marked. */
function Excerpt(props: { lines: string[]; line: number }) {
  const from = Math.max(1, props.line - 1);
  const to = Math.min(props.lines.length, props.line + 1);
  const rows: Array<{ n: number; text: string }> = [];
  for (let n = from; n <= to; n++) rows.push({ n, text: props.lines[n - 1]!.slice(0, 300) });
  return (
    <pre class="excerpt">{rows.map((r) => (r.n === props.line ? <mark>{`${String(r.n).padStart(4)} ${visible(r.text)}\n`}</mark> : `${String(r.n).padStart(4)} ${visible(r.text)}\n`))}</pre>
  );
}

export function RulesPage(props: { session: SessionUser; version: number | null; text: string; problems?: RuleProblem[]; reason?: string; notice?: string }) {
  const s = props.session;
  const problems = props.problems ?? [];
  const lines = props.text.split('\n');
  const invalid = problems.length > 0;
  return (
    <Layout title="Rules" session={s}>
      {props.notice !== undefined && <p class="note" role="status">{visible(props.notice)}</p>}
      <p>{props.version === null ? 'No rule set saved yet: findings keep the severity the agent gave.' : `Rule set version ${props.version} is in force.`} The format is <code>{RULES_SCHEMA}</code> (see the API's <a href="/api/v1/openapi.json">OpenAPI document</a>, operation saveRules).</p>
      {s.role !== 'admin' && (
        <>
          <p>Only an admin edits the rules here; you are {s.role}.</p>
          <pre class="rules" aria-label="The rules in force">{visible(props.text)}</pre>
        </>
      )}
      {s.role === 'admin' && (
        <form method="post" action="/rules" aria-label="Edit the rules">
          <Csrf session={s} />
          {invalid && (
            <div class="error" role="alert" id="rules-problems">
              <p>{`Not saved: ${problems.length} problem${problems.length === 1 ? '' : 's'} in the document.`}</p>
              <ol>
                {problems.map((p) => (
                  <li>
                    {visible(`${p.line === null ? '' : `line ${p.line}, `}${p.path}: ${p.message}`)}
                    {p.line !== null && p.line <= lines.length && <Excerpt lines={lines} line={p.line} />}
                  </li>
                ))}
              </ol>
            </div>
          )}
          <p>
            <label for="rules-text">The rule document (JSON)</label><br />
            <textarea id="rules-text" name="text" rows={Math.min(40, Math.max(12, lines.length + 2))} cols={80} spellcheck={false} required {...(invalid ? { 'aria-invalid': 'true', 'aria-describedby': 'rules-problems' } : {})}>{props.text}</textarea>
          </p>
          <p><label for="rules-reason">Reason (for the audit log)</label><br /><input id="rules-reason" name="reason" maxlength={16384} value={props.reason ?? ''} /></p>
          <button type="submit">Save the rules</button>
        </form>
      )}
    </Layout>
  );
}

/** GET /rules for every role; POST /rules for admins. */
export function ruleRoutes(app: Hono<WebEnv>, deps: ConsoleDeps): void {
  const { store, clock } = deps;
  const current = async () => {
    const r = await store.triage.currentRules();
    return { version: r?.version ?? null, text: JSON.stringify(r?.set ?? emptyRuleSet(), null, 2) };
  };
  app.get('/rules', async (c) => {
    const s = signedIn(c);
    if (s instanceof Response) return s;
    const done = c.req.query('done');
    return c.html(<RulesPage session={s} {...(await current())} {...(done === undefined ? {} : { notice: done.slice(0, 200) })} />);
  });
  app.post('/rules', async (c) => {
    const s = await signedInAs(c, ['admin']);
    if (s instanceof Response) return s;
    const form = c.get('form');
    // A browser sends a textarea's lines ending CRLF; the document is kept with LF.
    const text = (form.text ?? '').replaceAll('\r\n', '\n');
    const reason = (form.reason ?? '').trim();
    const checked = checkRulesText(text);
    if ('problems' in checked) return c.html(<RulesPage session={s} version={(await current()).version} text={text} problems={checked.problems} reason={reason} />, 400);
    const { version } = await store.triage.saveRules({ set: checked.set, actor: actor(s), ...(reason === '' ? {} : { reason }), now: clock() });
    return c.redirect(`/rules?done=${encodeURIComponent(`saved rule set version ${version}`)}`, 303);
  });
}
