// Readiness and the Prometheus metrics: no token.
import type { Hono } from 'hono';
import type { AppDeps, Env } from './context.js';

/** GET /healthz, GET /metrics. */
export function healthRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock, metrics } = deps;
  // Ready means a report sent now would be stored: 503 with the problems otherwise.
  app.get('/healthz', async (c) => {
    const health = (await deps.health?.()) ?? { ok: true, problems: [] };
    const node = deps.nodeId === undefined ? {} : { node: deps.nodeId };
    return health.ok ? c.json({ ok: true, ...node }) : c.json({ ok: false, ...node, error: { code: 'NOT_READY', message: health.problems.join('; ') }, problems: health.problems }, 503);
  });
  app.get('/metrics', async (c) => {
    const now = clock();
    return c.text(metrics.render(now.getTime(), await store.countHosts(now)), 200, { 'Content-Type': 'text/plain; version=0.0.4' });
  });
}
