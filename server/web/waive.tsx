// Waive by rule, from the host page: a suppress rule that matches one finding (its package, or its
// path), on this host's image or the whole fleet, added to the rule set in force through the same
// parser and store call as POST /api/v1/rules. Analysts and admins only, as that route.
import type { Hono } from 'hono';
import type { HostFinding } from '../../shared/api.js';
import { QuicksandError } from '../../shared/errors.js';
import { emptyRuleSet, parseRuleSet } from '../../shared/rules.js';
import type { Rule, RuleMatch } from '../../shared/rules.js';
import type { SessionUser } from '../store/types.js';
import { actor, formMistake, signedInAs } from './forms.js';
import type { ConsoleDeps } from './forms.js';
import { visible } from './host-view.js';
import { Csrf } from './layout.js';
import type { WebEnv } from './session.js';

/** The suppress rule that waives this finding: its kind and package (or path), on `image` or everywhere. */
export function waiverRule(f: Pick<HostFinding, 'kind' | 'ecosystem' | 'name' | 'path'>, req: { id: string; reason: string; image: string | null }): Rule {
  const match: RuleMatch = { kind: f.kind as NonNullable<RuleMatch['kind']> & string };
  if (f.name !== null) match.package = f.name;
  else if (f.path !== null) match.path = f.path;
  if (f.ecosystem !== null) match.ecosystem = f.ecosystem as NonNullable<RuleMatch['ecosystem']> & string;
  if (req.image !== null) match.image = req.image;
  return { id: req.id, description: req.reason, match, action: { type: 'suppress' } };
}

export function WaiveForm(props: { session: SessionUser; host: string; image: string | null; f: HostFinding }) {
  const id = `w${props.f.id}`;
  return (
    <details>
      <summary>Waive by rule</summary>
      <form method="post" action={`/hosts/${encodeURIComponent(props.host)}/findings/${props.f.id}/waive`}>
        <Csrf session={props.session} />
        <p>{`Adds a rule that suppresses ${props.f.kind} of ${visible(props.f.name ?? props.f.path ?? 'this kind')} (matched as a glob) from now on.`}</p>
        <p><label for={`${id}-rule`}>Rule id</label><br /><input id={`${id}-rule`} name="rule" required maxlength={200} value={`waive-${props.f.kind}-${props.f.id}`} /></p>
        <p><label for={`${id}-reason`}>Reason (required; the rule's description)</label><br /><input id={`${id}-reason`} name="reason" required maxlength={16384} /></p>
        <p><label for={`${id}-scope`}>Where</label><br />
          <select id={`${id}-scope`} name="scope">
            {props.image !== null && <option value="image">{`hosts of image ${visible(props.image)}`}</option>}
            <option value="fleet">every host</option>
          </select></p>
        <button type="submit">Add the waiver rule</button>
      </form>
    </details>
  );
}

/** POST /hosts/:id/findings/:fid/waive. */
export function waiveRoutes(app: Hono<WebEnv>, deps: ConsoleDeps): void {
  const { store, clock } = deps;
  app.post('/hosts/:id/findings/:fid/waive', async (c) => {
    const s = await signedInAs(c, ['admin', 'analyst']);
    if (s instanceof Response) return s;
    const hostId = c.req.param('id');
    const back = (text: string) => c.redirect(`/hosts/${encodeURIComponent(hostId)}?done=${encodeURIComponent(text)}`, 303);
    const form = c.get('form');
    const now = clock();
    try {
      const host = await store.getHost(hostId, now);
      if (host === null) throw new QuicksandError('NOT_FOUND', `no host ${hostId}`);
      const fid = Number(c.req.param('fid'));
      const f = ((await store.listFindings(hostId, { state: 'open' }, now)) ?? []).find((x) => x.id === fid);
      if (f === undefined) throw new QuicksandError('NOT_FOUND', `finding ${c.req.param('fid')} is not open on this host`);
      const reason = (form.reason ?? '').trim();
      if (reason === '') throw new QuicksandError('BODY_INVALID', 'reason: required');
      const rule = waiverRule(f, { id: (form.rule ?? '').trim(), reason, image: form.scope === 'image' ? (host.image?.name ?? null) : null });
      const current = await store.triage.currentRules();
      const base = current === null ? emptyRuleSet() : parseRuleSet(current.set, 'the rules in force');
      const set = parseRuleSet({ ...base, rules: [...base.rules, rule] }, 'the rules with the waiver');
      const { version } = await store.triage.saveRules({ set, actor: actor(s), reason, now });
      return back(`rule ${rule.id} added (rule set version ${version})`);
    } catch (err) {
      const mistake = formMistake(err);
      if (mistake === null) throw err;
      return back(`Not done: ${mistake.replaceAll('\n', '; ')}`);
    }
  });
}
