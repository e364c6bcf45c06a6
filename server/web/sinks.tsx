// Alert sinks (admin only: they hold other systems' credentials): the list with every credential
// redacted, a form to add or replace one (checked by the API's own parser, each refusal shown at
// its field), and per sink a test alert and removal. Secrets typed in are never shown back.
import type { Hono } from 'hono';
import { parseAlertSink } from '../../shared/alerts.js';
import { SEVERITIES } from '../../shared/findings.js';
import { deleteSinkAudited, redactSink, saveSinkAudited, testSinkAudited } from '../admin/sinks.js';
import type { FetchLike } from '../alerts/http.js';
import type { SessionUser } from '../store/types.js';
import { actor, errorsByField, fields, formMistake, invalidAttrs, signedInAs } from './forms.js';
import type { ConsoleDeps } from './forms.js';
import { visible } from './host-view.js';
import { Csrf, Layout } from './layout.js';
import type { WebEnv } from './session.js';
import { WideTable } from './table.js';
import type { Column } from './table.js';

const SINK_TYPES = ['webhook', 'slack', 'pagerduty'] as const;
/** What the add form shows back after a refusal: never `secret` or `routingKey`. */
type Typed = Partial<Record<'type' | 'id' | 'name' | 'url' | 'minSeverity', string>>;

/** The form's fields as the sink JSON the API takes: only the fields of the chosen type. */
export function sinkFromForm(form: Record<string, string>): Record<string, string> {
  const f = fields(form, ['type', 'id', 'name', 'url', 'secret', 'routingKey', 'minSeverity']);
  const keep = f.type === 'webhook' ? ['url', 'secret'] : f.type === 'slack' ? ['url'] : f.type === 'pagerduty' ? ['url', 'routingKey'] : ['url', 'secret', 'routingKey'];
  return Object.fromEntries(Object.entries(f).filter(([k]) => ['type', 'id', 'name', 'minSeverity', ...keep].includes(k)));
}

function Field(props: { name: string; label: string; errors: Map<string, string[]>; value?: string; type?: string }) {
  const err = props.errors.get(props.name);
  const id = `sink-${props.name}`;
  return (
    <p>
      <label for={id}>{props.label}</label><br />
      <input id={id} name={props.name} type={props.type ?? 'text'} value={props.value ?? ''} maxlength={2048} autocomplete="off" {...invalidAttrs(err === undefined ? null : `${id}-error`)} />
      {err !== undefined && <><br /><span class="field-error" id={`${id}-error`}>{err.join('; ')}</span></>}
    </p>
  );
}

type Sink = Record<string, unknown>;

function sinkColumns(s: SessionUser): Column<Sink>[] {
  const id = (k: Sink) => String(k.id);
  return [
    { head: 'Id', cell: (k) => <code>{visible(id(k))}</code> },
    { head: 'Type', cell: (k) => String(k.type) },
    { head: 'Name', cell: (k) => visible(String(k.name ?? '')) },
    { head: 'Where', cell: (k) => <code>{visible(String(k.url ?? ''))}</code> },
    { head: 'From severity', cell: (k) => String(k.minSeverity) },
    {
      head: 'Actions',
      cell: (k) => (
        <>
          <form method="post" action={`/sinks/${encodeURIComponent(id(k))}/test`} class="inline"><Csrf session={s} /><button type="submit" aria-label={`Send a test alert to ${visible(id(k))}`}>Test</button></form>
          <form method="post" action={`/sinks/${encodeURIComponent(id(k))}/delete`} class="inline"><Csrf session={s} /><button type="submit" aria-label={`Remove sink ${visible(id(k))}`}>Remove</button></form>
        </>
      ),
    },
  ];
}

export function SinksPage(props: { session: SessionUser; sinks: Sink[]; notice?: string; error?: string; typed?: Typed }) {
  const s = props.session;
  const errors = props.error === undefined ? new Map<string, string[]>() : errorsByField(props.error);
  const typed = props.typed ?? {};
  const general = errors.get('') ?? (props.error !== undefined && errors.size === 0 ? [props.error] : undefined);
  return (
    <Layout title="Alert sinks" session={s}>
      {props.notice !== undefined && <p class="note" role="status">{visible(props.notice)}</p>}
      {props.error !== undefined && <p class="error" role="alert">{`Not saved: ${general?.join('; ') ?? 'see the fields marked below.'}`}</p>}
      <WideTable rows={props.sinks} columns={sinkColumns(s)} />
      {props.sinks.length === 0 && <p>No sinks: alerts are queued and kept, but go nowhere.</p>}
      <h2>Add or replace a sink</h2>
      <form method="post" action="/sinks" aria-label="Add or replace a sink">
        <Csrf session={s} />
        <p><label for="sink-type">Type</label><br />
          <select id="sink-type" name="type" {...invalidAttrs(errors.has('type') ? 'sink-type-error' : null)}>{SINK_TYPES.map((t) => <option value={t} selected={typed.type === t}>{t}</option>)}</select>
          {errors.has('type') && <><br /><span class="field-error" id="sink-type-error">{errors.get('type')!.join('; ')}</span></>}</p>
        <Field name="id" label="Id (a sink of the same id is replaced)" errors={errors} value={typed.id ?? ''} />
        <Field name="name" label="Name (optional)" errors={errors} value={typed.name ?? ''} />
        <Field name="url" label="URL (webhook, Slack; PagerDuty optional)" errors={errors} value={typed.url ?? ''} />
        <Field name="secret" label="Webhook secret (16 characters or more; never shown again)" type="password" errors={errors} />
        <Field name="routingKey" label="PagerDuty routing key (never shown again)" type="password" errors={errors} />
        <p><label for="sink-minSeverity">Alert from severity</label><br />
          <select id="sink-minSeverity" name="minSeverity"><option value="">the type's default</option>{SEVERITIES.filter((v) => v !== 'info').map((v) => <option value={v} selected={typed.minSeverity === v}>{v}</option>)}</select></p>
        <button type="submit">Save sink</button>
      </form>
    </Layout>
  );
}

/** /sinks: admin only, on the server as in the navigation. */
export function sinkRoutes(app: Hono<WebEnv>, deps: ConsoleDeps): void {
  const { store, clock } = deps;
  const fetchFn: FetchLike = deps.fetch ?? (fetch as FetchLike);
  const list = async () => (await store.listSinks()).map(redactSink);
  app.get('/sinks', async (c) => {
    const s = await signedInAs(c, ['admin']);
    if (s instanceof Response) return s;
    const done = c.req.query('done');
    return c.html(<SinksPage session={s} sinks={await list()} {...(done === undefined ? {} : { notice: done.slice(0, 300) })} />);
  });
  app.post('/sinks', async (c) => {
    const s = await signedInAs(c, ['admin']);
    if (s instanceof Response) return s;
    const form = c.get('form');
    try {
      const sink = parseAlertSink(sinkFromForm(form), 'the sink');
      const replaced = await saveSinkAudited(store, sink, actor(s), clock());
      return c.redirect(`/sinks?done=${encodeURIComponent(`${replaced ? 'replaced' : 'added'} sink ${sink.id}`)}`, 303);
    } catch (err) {
      const mistake = formMistake(err);
      if (mistake === null) throw err;
      const typed = fields(form, ['type', 'id', 'name', 'url', 'minSeverity']);
      return c.html(<SinksPage session={s} sinks={await list()} error={mistake} typed={typed} />, 400);
    }
  });
  app.post('/sinks/:id/delete', async (c) => {
    const s = await signedInAs(c, ['admin']);
    if (s instanceof Response) return s;
    await deleteSinkAudited(store, c.req.param('id'), actor(s), clock());
    return c.redirect(`/sinks?done=${encodeURIComponent(`removed sink ${c.req.param('id')}`)}`, 303);
  });
  app.post('/sinks/:id/test', async (c) => {
    const s = await signedInAs(c, ['admin']);
    if (s instanceof Response) return s;
    const r = await testSinkAudited(store, fetchFn, c.req.param('id'), actor(s), clock());
    return c.html(<SinksPage session={s} sinks={await list()} notice={`Test alert to ${c.req.param('id')}: ${r.text}`} />);
  });
}
