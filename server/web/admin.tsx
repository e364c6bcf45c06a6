// Admin only: the console's users, API tokens and enrolment secrets (ids and states; a secret's
// or token's text and a generated password are shown once, on the page that made them), with the
// forms to add and change them. Every change is audited under the acting admin's name.
import type { Hono } from 'hono';
import { API_ROLES, MAX_SECRET_USES } from '../../shared/api.js';
import type { ApiRoleName } from '../../shared/api.js';
import { QuicksandError } from '../../shared/errors.js';
import { MAX_PASSWORD } from '../passwords.js';
import {
  addUserAudited,
  checkTokenName,
  checkUserName,
  chosenPassword,
  createEnrollSecretAudited,
  createUserTokenAudited,
  revokeApiTokenAudited,
  revokeEnrollSecretAudited,
  setPasswordAudited,
  setUserDisabledAudited,
  setUserRoleAudited,
} from '../admin/accounts.js';
import type { ApiTokenInfo, EnrollSecretInfo, SessionUser, UserInfo } from '../store/types.js';
import { actor, fields, formMistake, signedInAs } from './forms.js';
import type { ConsoleDeps } from './forms.js';
import { visible } from './host-view.js';
import { Csrf, Layout } from './layout.js';
import type { WebEnv } from './session.js';
import { WideTable } from './table.js';
import type { Column } from './table.js';

/** What a form just made, shown this once. */
export interface ShownOnce {
  what: string;
  text: string;
}

function PostButton(props: { session: SessionUser; action: string; label: string; name: string }) {
  return (
    <form method="post" action={props.action} class="inline">
      <Csrf session={props.session} />
      <button type="submit" aria-label={`${props.label} ${props.name}`}>{props.label}</button>
    </form>
  );
}

function userColumns(s: SessionUser): Column<UserInfo>[] {
  const base = (u: UserInfo) => `/admin/users/${encodeURIComponent(u.name)}`;
  return [
    { head: 'Name', cell: (u) => u.name },
    { head: 'Role', cell: (u) => u.role },
    { head: 'Created', cell: (u) => u.createdAt },
    { head: 'Last login', cell: (u) => u.lastLoginAt ?? 'never' },
    { head: 'State', cell: (u) => (u.disabledAt === null ? 'active' : `disabled ${u.disabledAt}`) },
    {
      head: 'Actions',
      cell: (u) => (
        <>
          {u.name !== s.user && (u.disabledAt === null ? <PostButton session={s} action={`${base(u)}/disable`} label="Disable" name={u.name} /> : <PostButton session={s} action={`${base(u)}/enable`} label="Enable" name={u.name} />)}
          <PostButton session={s} action={`${base(u)}/password`} label="New password" name={u.name} />
          {u.name !== s.user && (
            <form method="post" action={`${base(u)}/role`} class="inline">
              <Csrf session={s} />
              <select name="role" aria-label={`New role of ${u.name}`}>{API_ROLES.map((r) => <option value={r} selected={r === u.role}>{r}</option>)}</select>
              <button type="submit" aria-label={`Change role of ${u.name}`}>Change role</button>
            </form>
          )}
        </>
      ),
    },
  ];
}

function tokenColumns(s: SessionUser): Column<ApiTokenInfo>[] {
  return [
    { head: 'Id', cell: (t) => <code>{t.id}</code> },
    { head: 'Role', cell: (t) => t.role },
    { head: 'User', cell: (t) => t.user ?? '—' },
    { head: 'Name', cell: (t) => visible(t.name ?? '') },
    { head: 'Created', cell: (t) => t.createdAt },
    { head: 'State', cell: (t) => (t.revokedAt === null ? 'active' : `revoked ${t.revokedAt}`) },
    { head: 'Actions', cell: (t) => t.revokedAt === null && <PostButton session={s} action={`/admin/tokens/${encodeURIComponent(t.id)}/revoke`} label="Revoke token" name={t.id} /> },
  ];
}

function secretColumns(s: SessionUser): Column<EnrollSecretInfo>[] {
  return [
    { head: 'Id', cell: (e) => <code>{e.id}</code> },
    { head: 'Created', cell: (e) => e.createdAt },
    { head: 'Expires', cell: (e) => e.expiresAt ?? 'never' },
    { head: 'Uses', cell: (e) => `${e.uses}${e.maxUses === null ? '' : ` of ${e.maxUses}`}` },
    { head: 'State', cell: (e) => e.state },
    { head: 'Actions', cell: (e) => e.state === 'active' && <PostButton session={s} action={`/admin/enroll-secrets/${encodeURIComponent(e.id)}/revoke`} label="Revoke secret" name={e.id} /> },
  ];
}

export function AdminPage(props: { session: SessionUser; users: UserInfo[]; tokens: ApiTokenInfo[]; secrets: EnrollSecretInfo[]; notice?: string; shownOnce?: ShownOnce; error?: string }) {
  const s = props.session;
  const active = props.users.filter((u) => u.disabledAt === null);
  return (
    <Layout title="Users and credentials" session={s}>
      {props.error !== undefined && <p class="error" role="alert">{visible(`Not done: ${props.error}`)}</p>}
      {props.notice !== undefined && <p class="note" role="status">{visible(props.notice)}</p>}
      {props.shownOnce !== undefined && (
        <div class="note" role="status">
          <p>{`${props.shownOnce.what} — shown this once; copy it now:`}</p>
          <p><code class="once">{props.shownOnce.text}</code></p>
        </div>
      )}
      <h2>Users</h2>
      <WideTable rows={props.users} columns={userColumns(s)} />
      <p>A new password ends every session of that user. A new role applies to the user's sessions and API tokens from their next request.</p>
      <details>
        <summary>Add a user</summary>
        <form method="post" action="/admin/users" aria-label="Add a user">
          <Csrf session={s} />
          <p><label for="user-name">User name (a-z 0-9 . _ -)</label><br /><input id="user-name" name="name" required maxlength={64} pattern="[a-z0-9][a-z0-9._\-]{0,63}" autocomplete="off" /></p>
          <p><label for="user-role">Role</label><br /><select id="user-role" name="role">{API_ROLES.map((r) => <option value={r} selected={r === 'auditor'}>{r}</option>)}</select></p>
          <p><label for="user-password">Password (empty: one is generated and shown once)</label><br /><input id="user-password" name="password" type="password" maxlength={MAX_PASSWORD} autocomplete="new-password" /></p>
          <button type="submit">Add user</button>
        </form>
      </details>

      <h2>API tokens</h2>
      <WideTable rows={props.tokens} columns={tokenColumns(s)} />
      <details>
        <summary>Create an API token for a user</summary>
        <form method="post" action="/admin/tokens" aria-label="Create an API token">
          <Csrf session={s} />
          <p><label for="token-user">User (the token carries the user's role)</label><br /><select id="token-user" name="user">{active.map((u) => <option value={u.name}>{`${u.name} (${u.role})`}</option>)}</select></p>
          <p><label for="token-name">Name (whose it is, for the audit log)</label><br /><input id="token-name" name="name" maxlength={200} /></p>
          <button type="submit">Create token</button>
        </form>
      </details>

      <h2>Enrolment secrets</h2>
      <WideTable rows={props.secrets} columns={secretColumns(s)} />
      <details>
        <summary>Create an enrolment secret</summary>
        <form method="post" action="/admin/enroll-secrets" aria-label="Create an enrolment secret">
          <Csrf session={s} />
          <p><label for="secret-expires">Expires after (24h, 7d, 1h30m; empty: never)</label><br /><input id="secret-expires" name="expires" maxlength={50} /></p>
          <p><label for="secret-uses">Uses (empty: any number)</label><br /><input id="secret-uses" name="uses" inputmode="numeric" maxlength={7} /></p>
          <button type="submit">Create secret</button>
        </form>
      </details>
    </Layout>
  );
}

/** GET /admin and its forms' POSTs: admin only, on the server. */
export function adminRoutes(app: Hono<WebEnv>, deps: ConsoleDeps): void {
  const { store, clock } = deps;
  const page = async (s: SessionUser, extra: { notice?: string; shownOnce?: ShownOnce; error?: string } = {}) => (
    <AdminPage session={s} users={await store.listUsers()} tokens={await store.listApiTokens()} secrets={await store.listEnrollSecrets(clock())} {...extra} />
  );
  app.get('/admin', async (c) => {
    const s = await signedInAs(c, ['admin']);
    if (s instanceof Response) return s;
    const done = c.req.query('done');
    return c.html(await page(s, done === undefined ? {} : { notice: done.slice(0, 200) }));
  });
  /** An admin form: what it did (a notice, or a text to show once); a user's mistake is shown on the page. */
  const post = (path: string, act: (form: Record<string, string>, s: SessionUser, param: (n: string) => string) => Promise<{ notice: string } | { shownOnce: ShownOnce }>) =>
    app.post(path, async (c) => {
      const s = await signedInAs(c, ['admin']);
      if (s instanceof Response) return s;
      try {
        const r = await act(c.get('form'), s, (n) => c.req.param(n) ?? '');
        // A text shown once is never put in a URL (history, logs): this answer is the page.
        if ('shownOnce' in r) return c.html(await page(s, r));
        return c.redirect(`/admin?done=${encodeURIComponent(r.notice)}`, 303);
      } catch (err) {
        const mistake = formMistake(err);
        if (mistake === null) throw err;
        return c.html(await page(s, { error: mistake }), 400);
      }
    });

  post('/admin/users', async (form, s) => {
    const name = checkUserName((form.name ?? '').trim());
    const role = form.role as ApiRoleName;
    if (!API_ROLES.includes(role)) throw new QuicksandError('USAGE', `role: expected one of ${API_ROLES.join(', ')}`);
    const pw = chosenPassword(form.password);
    await addUserAudited(store, { name, role, password: pw.text, actor: actor(s), now: clock() });
    return pw.generated ? { shownOnce: { what: `Added ${role} ${name}; their password`, text: pw.text } } : { notice: `added ${role} ${name}` };
  });
  for (const verb of ['disable', 'enable'] as const) {
    post(`/admin/users/:name/${verb}`, async (_form, s, param) => {
      const name = checkUserName(param('name'));
      if (name === s.user) throw new QuicksandError('USAGE', 'you cannot disable or enable yourself here: another admin can');
      await setUserDisabledAudited(store, { name, disabled: verb === 'disable', actor: actor(s), now: clock() });
      return { notice: `${verb}d ${name}` };
    });
  }
  post('/admin/users/:name/role', async (form, s, param) => {
    const name = checkUserName(param('name'));
    // An admin who demotes themselves could leave no admin: another admin can.
    if (name === s.user) throw new QuicksandError('USAGE', 'you cannot change your own role here: another admin can');
    const role = form.role as ApiRoleName;
    if (!API_ROLES.includes(role)) throw new QuicksandError('USAGE', `role: expected one of ${API_ROLES.join(', ')}`);
    await setUserRoleAudited(store, { name, role, actor: actor(s), now: clock() });
    return { notice: `${name} is now ${role}` };
  });
  post('/admin/users/:name/password', async (_form, s, param) => {
    const name = checkUserName(param('name'));
    const pw = chosenPassword(undefined);
    await setPasswordAudited(store, { name, password: pw.text, actor: actor(s), now: clock() });
    return { shownOnce: { what: `New password of ${name} (their sessions ended)`, text: pw.text } };
  });
  post('/admin/tokens', async (form, s) => {
    const user = checkUserName(form.user);
    const name = checkTokenName(fields(form, ['name']).name, 'token name');
    const t = await createUserTokenAudited(store, { user, name, actor: actor(s), now: clock() });
    return { shownOnce: { what: `API token ${t.id} of ${user}`, text: t.token } };
  });
  post('/admin/tokens/:id/revoke', async (_form, s, param) => {
    await revokeApiTokenAudited(store, param('id'), actor(s), clock());
    return { notice: `revoked API token ${param('id')}` };
  });
  post('/admin/enroll-secrets', async (form, s) => {
    const f = fields(form, ['expires', 'uses']);
    if (f.uses !== undefined && !/^[1-9]\d{0,6}$/.test(f.uses.trim())) throw new QuicksandError('USAGE', `uses: expected a whole number from 1 to ${MAX_SECRET_USES}, got "${f.uses.slice(0, 20)}"`);
    const uses = f.uses === undefined ? undefined : Number(f.uses.trim());
    if (uses !== undefined && uses > MAX_SECRET_USES) throw new QuicksandError('USAGE', `uses: at most ${MAX_SECRET_USES}`);
    const made = await createEnrollSecretAudited(store, { expires: f.expires?.trim(), uses, actor: actor(s), now: clock() });
    return { shownOnce: { what: `Enrolment secret ${made.id}${made.expiresAt === null ? '' : `, until ${made.expiresAt}`}${made.maxUses === null ? '' : `, ${made.maxUses} uses`}`, text: made.secret } };
  });
  post('/admin/enroll-secrets/:id/revoke', async (_form, s, param) => {
    await revokeEnrollSecretAudited(store, param('id'), actor(s), clock());
    return { notice: `revoked enrolment secret ${param('id')}` };
  });
}
