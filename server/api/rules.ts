// The rule list that decides severity and alerting.
import type { Hono } from 'hono';
import { parseRuleSet } from '../../shared/rules.js';
import { TRIAGE_ROLES, actorOf, jsonBody, requireRole } from './context.js';
import type { AppDeps, Env } from './context.js';

/** GET and POST /api/v1/rules. */
export function ruleRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { store, clock } = deps;
  app.get('/api/v1/rules', (c) => c.json({ rules: store.triage.currentRules() }));
  app.post('/api/v1/rules', async (c) => {
    requireRole(c, TRIAGE_ROLES);
    const set = parseRuleSet(await jsonBody(c), 'body');
    return c.json(store.triage.saveRules({ set, actor: actorOf(c), now: clock() }), 201);
  });
}
