// The frame of every console page: skip link, navigation (what the role may see), the logout form.
import type { Child } from 'hono/jsx';
import { CSRF_FIELD } from '../../shared/console.js';
import type { SessionUser } from '../store/types.js';

export function Layout(props: { title: string; session: SessionUser | null; children: Child }) {
  const s = props.session;
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>{`${props.title} — Quicksand`}</title>
        <link rel="stylesheet" href="/console.css" />
      </head>
      <body>
        <a class="skip" href="#main">Skip to content</a>
        <header>
          <strong>Quicksand</strong>
          {s !== null && (
            <nav aria-label="Console">
              <a href="/">Fleet</a>
              <a href="/images">Images</a>
              <a href="/alerts">Alerts</a>
              <a href="/rules">Rules</a>
              {s.role === 'admin' && <a href="/sinks">Sinks</a>}
              <a href="/audit">Audit log</a>
              <a href="/export">Export</a>
              {s.role === 'admin' && <a href="/admin">Users and credentials</a>}
              <a href="/api/v1/openapi.json">API (OpenAPI)</a>
            </nav>
          )}
          {s !== null && (
            <form method="post" action="/logout">
              <input type="hidden" name={CSRF_FIELD} value={s.csrf} />
              <span>{`${s.user} (${s.role}) `}</span>
              <button type="submit">Log out</button>
            </form>
          )}
        </header>
        <main id="main">
          <h1>{props.title}</h1>
          {props.children}
        </main>
      </body>
    </html>
  );
}

/** The hidden field every form of a session carries. */
export function Csrf(props: { session: SessionUser }) {
  return <input type="hidden" name={CSRF_FIELD} value={props.session.csrf} />;
}
