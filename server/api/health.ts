// Liveness and the Prometheus metrics: no token.
import type { Hono } from 'hono';
import type { AppDeps, Env } from './context.js';

/** GET /healthz, GET /metrics. */
export function healthRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock, metrics } = deps;
  app.get('/healthz', (c) => c.json({ ok: true }));
  app.get('/metrics', (c) => {
    const now = clock();
    return c.text(metrics.render(now.getTime(), store.countHosts(now)), 200, { 'Content-Type': 'text/plain; version=0.0.4' });
  });
}
