// Admin only: the console's users, API tokens and enrolment secrets (ids and states, never a
// secret's text). Changes are made with `quicksand-server user|token|enroll-secret` or the API.
import type { ApiTokenInfo, EnrollSecretInfo, SessionUser, UserInfo } from '../store/types.js';
import { visible } from './host-view.js';
import { Layout } from './layout.js';

export function AdminPage(props: { session: SessionUser; users: UserInfo[]; tokens: ApiTokenInfo[]; secrets: EnrollSecretInfo[] }) {
  return (
    <Layout title="Users and credentials" session={props.session}>
      <h2>Users</h2>
      <table class="wide">
        <thead><tr><th scope="col">Name</th><th scope="col">Role</th><th scope="col">Created</th><th scope="col">Last login</th><th scope="col">State</th></tr></thead>
        <tbody>{props.users.map((u) => <tr><td>{u.name}</td><td>{u.role}</td><td>{u.createdAt}</td><td>{u.lastLoginAt ?? 'never'}</td><td>{u.disabledAt === null ? 'active' : `disabled ${u.disabledAt}`}</td></tr>)}</tbody>
      </table>
      <h2>API tokens</h2>
      <table class="wide">
        <thead><tr><th scope="col">Id</th><th scope="col">Role</th><th scope="col">User</th><th scope="col">Name</th><th scope="col">Created</th><th scope="col">State</th></tr></thead>
        <tbody>{props.tokens.map((t) => <tr><td><code>{t.id}</code></td><td>{t.role}</td><td>{t.user ?? '—'}</td><td>{visible(t.name ?? '')}</td><td>{t.createdAt}</td><td>{t.revokedAt === null ? 'active' : `revoked ${t.revokedAt}`}</td></tr>)}</tbody>
      </table>
      <h2>Enrolment secrets</h2>
      <table class="wide">
        <thead><tr><th scope="col">Id</th><th scope="col">Created</th><th scope="col">Expires</th><th scope="col">Uses</th><th scope="col">State</th></tr></thead>
        <tbody>{props.secrets.map((s) => <tr><td><code>{s.id}</code></td><td>{s.createdAt}</td><td>{s.expiresAt ?? 'never'}</td><td>{`${s.uses}${s.maxUses === null ? '' : ` of ${s.maxUses}`}`}</td><td>{s.state}</td></tr>)}</tbody>
      </table>
      <p>Add users with <code>quicksand-server user add NAME --role ROLE</code>; tokens with <code>token create --user NAME</code>; secrets with <code>enroll-secret</code>.</p>
    </Layout>
  );
}
