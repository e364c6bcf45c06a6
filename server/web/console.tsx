// The security team's console as a Hono app built from plain parameters (store, clock, the
// stream for scan-now): server-rendered pages, no script. server.ts sends it every path that is
// not the API's. One file per page beside this one; this file only routes.
import { Hono } from 'hono';
import type { Context } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { csrf } from 'hono/csrf';
import { HTTPException } from 'hono/http-exception';
import { getConnInfo } from '@hono/node-server/conninfo';
import { approveBodySchema, auditQuerySchema, reasonBodySchema } from '../../shared/api.js';
import { QuicksandError, isQuicksandError } from '../../shared/errors.js';
import { formatIssues } from '../../shared/schema-errors.js';
import { CONSOLE_SECURITY_HEADERS } from '../../shared/security-headers.js';
import type { SessionUser, Store } from '../store/types.js';
import { adminRoutes } from './admin.js';
import { alertRoutes } from './alerts.js';
import { Message, actor, fields, parseForm } from './forms.js';
import type { ConsoleDeps } from './forms.js';
import { ruleRoutes } from './rules.js';
import { sinkRoutes } from './sinks.js';
import { waiveRoutes } from './waive.js';
import { AUDIT_PAGE, AuditPage } from './audit.js';
import { ExportPage } from './export.js';
import { FleetPage } from './fleet.js';
import { fleetCsvStream, fleetData, imagesData } from './fleet-data.js';
import { pageOf, parseFleetFilters } from './fleet-view.js';
import { HostPage } from './host.js';
import { ImagesPage } from './images.js';
import { Layout } from './layout.js';
import { LoginPage, login, logout, safeNext } from './login.js';
import { DEFAULT_SESSION_POLICY, FORM_LIMIT, mayTriage, sessions, signedIn } from './session.js';
import type { SessionPolicy, WebEnv } from './session.js';
import { CONSOLE_CSS } from './styles.js';

export type { ConsoleDeps };

function address(c: Context<WebEnv>): string {
  try {
    return getConnInfo(c).remote.address ?? '';
  } catch {
    return ''; // app.request() in tests: no socket
  }
}

/** Findings per host page. */
export const HOST_PAGE_SIZE = 200;

/** Status changes and audit entries the host page lists (the newest). */
export const HOST_HISTORY = 200;

export function createConsole(deps: ConsoleDeps): Hono<WebEnv> {
  const { store, clock } = deps;
  const policy = deps.policy ?? DEFAULT_SESSION_POLICY;
  const app = new Hono<WebEnv>();
  app.use('*', async (c, next) => {
    await next();
    for (const [k, v] of Object.entries(CONSOLE_SECURITY_HEADERS)) c.res.headers.set(k, v);
  });
  // Hono's check (Origin / Sec-Fetch-Site on form bodies), then ours on every body and the
  // session's token in every form (sessions()).
  app.use('*', bodyLimit({ maxSize: FORM_LIMIT, onError: (c) => c.text(`Too large: a console form is at most ${FORM_LIMIT} bytes`, 413) }));
  app.use('*', csrf());
  app.use('*', sessions(store, clock));
  app.onError((err, c) => {
    const s = c.get('session') ?? null;
    if (err instanceof HTTPException) return c.html(<Message session={s} title="Refused" text={`Refused (${err.status}): this form must be sent from a page of this console.`} />, err.status);
    if (isQuicksandError(err)) {
      const status = err.code === 'NOT_FOUND' ? 404 : err.code === 'FORBIDDEN' ? 403 : err.code === 'CONFLICT' ? 409 : 400;
      return c.html(<Message session={s} title="Refused" text={err.message} />, status);
    }
    return c.html(<Message session={s} title="Error" text="Internal error: the server log has the details." />, 500);
  });
  app.notFound((c) => c.html(<Message session={c.get('session') ?? null} title="Not found" text={`No page ${c.req.path}`} />, 404));

  app.get('/console.css', (c) => c.body(CONSOLE_CSS, 200, { 'content-type': 'text/css; charset=utf-8' }));
  app.get('/login', (c) => c.html(<LoginPage next={safeNext(c.req.query('next'))} />));
  app.post('/login', (c) => login(c, { store, clock, policy, address: address(c) }));
  app.post('/logout', (c) => logout(c, store, clock));

  // The fleet's filters from the URL; bad ones are named, and the page shows the whole fleet.
  const fleetFilters = (c: Context<WebEnv>) => {
    const parsed = parseFleetFilters(c.req.query());
    return 'filters' in parsed ? { filters: parsed.filters } : { filters: { page: 1 }, error: parsed.error };
  };
  app.get('/', async (c) => {
    const s = signedIn(c);
    if (s instanceof Response) return s;
    const { filters, error } = fleetFilters(c);
    const data = await fleetData(store, filters, clock());
    return c.html(<FleetPage session={s} data={data} filters={filters} {...(error === undefined ? {} : { error })} />, error === undefined ? 200 : 400);
  });
  app.get('/fleet.csv', (c) => {
    const s = signedIn(c);
    if (s instanceof Response) return s;
    const { filters, error } = fleetFilters(c);
    if (error !== undefined) return c.text(`filters: ${error}`, 400);
    return c.body(fleetCsvStream(store, filters, clock()), 200, { 'content-type': 'text/csv; charset=utf-8', 'content-disposition': 'attachment; filename="quicksand-fleet.csv"' });
  });

  const hostPage = async (c: Context<WebEnv>, s: SessionUser, notice?: string, status: 200 | 400 = 200) => {
    const id = c.req.param('id')!;
    const now = clock();
    const host = await store.getHost(id, now);
    if (host === null) return c.html(<Message session={s} title="Not found" text={`No host ${id}`} />, 404);
    // A host with thousands of findings is shown a page of them at a time, grouped by change set in SQL.
    const asked = Math.max(1, Math.min(10_000, Number(c.req.query('page') ?? '1') || 1));
    const first = await store.pageOpenFindings(id, { offset: (asked - 1) * HOST_PAGE_SIZE, limit: HOST_PAGE_SIZE }, now);
    const total = first?.total ?? 0;
    const page = pageOf(total, asked, HOST_PAGE_SIZE);
    // Past the last page: the last one.
    const open = page.page === asked ? first : await store.pageOpenFindings(id, { offset: page.offset, limit: HOST_PAGE_SIZE }, now);
    // The status history, and the triage acts on the host, its findings and change sets (`host:ID/…`).
    const [statusHistory, history] = await Promise.all([store.statusHistory(id, HOST_HISTORY), store.hostAudit(id, HOST_HISTORY)]);
    return c.html(
      <HostPage session={s} host={{ ...host, connected: deps.stream?.isConnected(id) ?? false }} findings={open?.findings ?? []} findingsPage={{ page: page.page, pages: page.pages, total }} statusHistory={statusHistory ?? []} history={history} {...(notice === undefined ? {} : { notice })} />,
      status,
    );
  };
  app.get('/hosts/:id', async (c) => {
    const s = signedIn(c);
    const done = c.req.query('done');
    return s instanceof Response ? s : hostPage(c, s, done === undefined ? undefined : done.slice(0, 200));
  });

  /** A triage form's POST: signed in, a role that may, the form parsed; then back to the host. */
  const triage = (run: (c: Context<WebEnv>, s: SessionUser) => Promise<string>) => async (c: Context<WebEnv>) => {
    const s = signedIn(c);
    if (s instanceof Response) return s;
    if (!mayTriage(s.role)) return c.html(<Message session={s} title="Forbidden" text={`This needs the role admin or analyst; you are ${s.role}.`} />, 403);
    const r = await run(c, s).catch((err: unknown) => {
      if (isQuicksandError(err) && (err.code === 'BODY_INVALID' || err.code === 'QUERY_INVALID')) return { invalid: err.message };
      throw err;
    });
    if (typeof r !== 'string') return hostPage(c, s, `Not done: ${r.invalid}`, 400);
    return c.redirect(`/hosts/${encodeURIComponent(c.req.param('id')!)}?done=${encodeURIComponent(r)}`, 303);
  };
  const parse = parseForm;
  const findingId = (c: Context<WebEnv>): number => {
    const t = c.req.param('fid')!;
    if (!/^[1-9]\d{0,15}$/.test(t)) throw new QuicksandError('QUERY_INVALID', `finding id: expected a positive integer, got "${t}"`);
    return Number(t);
  };
  app.post('/hosts/:id/findings/:fid/approve', triage(async (c, s) => {
    const body = parse(approveBodySchema, fields(c.get('form'), ['reason', 'ticket', 'expiresAt']));
    const r = await store.triage.approve({ hostId: c.req.param('id')!, findingIds: [findingId(c)], ...body, actor: actor(s), now: clock() });
    return `approved ${r.approved.length}; the host is ${r.status}`;
  }));
  app.post('/hosts/:id/change-sets/:cs/approve', triage(async (c, s) => {
    const body = parse(approveBodySchema, fields(c.get('form'), ['reason', 'ticket', 'expiresAt']));
    const r = await store.triage.approve({ hostId: c.req.param('id')!, changeSet: c.req.param('cs')!, ...body, actor: actor(s), now: clock() });
    return `approved ${r.approved.length}; the host is ${r.status}`;
  }));
  app.post('/hosts/:id/findings/:fid/reopen', triage(async (c, s) => {
    const body = parse(reasonBodySchema, fields(c.get('form'), ['reason', 'ticket']));
    const r = await store.triage.reopen({ hostId: c.req.param('id')!, findingId: findingId(c), reason: body.reason, actor: actor(s), now: clock() });
    return `re-opened; the host is ${r.status}`;
  }));
  app.post('/hosts/:id/rebaseline', triage(async (c, s) => {
    const body = parse(reasonBodySchema, fields(c.get('form'), ['reason', 'ticket']));
    const r = await store.triage.rebaseline({ hostId: c.req.param('id')!, ...body, actor: actor(s), now: clock() });
    return `re-baseline version ${r.version} accepted ${r.accepted}; awaiting the agent's observation`;
  }));
  app.post('/hosts/:id/scan-now', triage(async (c) => (deps.stream?.sendCommand(c.req.param('id')!, 'scan-now') === true ? 'scan requested' : 'the agent is not connected now')));

  app.get('/images', async (c) => {
    const s = signedIn(c);
    if (s instanceof Response) return s;
    const now = clock();
    return c.html(<ImagesPage session={s} data={await imagesData(store, now)} />);
  });
  app.get('/audit', async (c) => {
    const s = signedIn(c);
    if (s instanceof Response) return s;
    const given = Object.fromEntries(Object.entries(c.req.query()).filter(([, v]) => v !== ''));
    const r = auditQuerySchema.safeParse({ limit: String(AUDIT_PAGE), ...given });
    // A filter refused lists nothing (not everything) and shows what was typed, with why.
    if (!r.success) return c.html(<AuditPage session={s} page={{ entries: [], older: null }} query={Object.fromEntries(Object.entries(given).map(([k, v]) => [k, v.slice(0, 300)]))} error={formatIssues(r.error)} />, 400);
    return c.html(<AuditPage session={s} page={await store.triage.listAudit(r.data)} query={r.data} />);
  });
  adminRoutes(app, deps);
  alertRoutes(app, deps);
  sinkRoutes(app, deps);
  ruleRoutes(app, deps);
  waiveRoutes(app, deps);
  app.get('/export', (c) => {
    const s = signedIn(c);
    return s instanceof Response ? s : c.html(<ExportPage session={s} now={clock()} />);
  });
  return app;
}
