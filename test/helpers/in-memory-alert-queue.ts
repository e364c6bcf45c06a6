// FOR TESTS ONLY. The server's store implements AlertQueueStore over SQLite; this stand-in keeps
// deliveries in a Map so the delivery policy can be tested without a database.
import type { AlertQueueStore, DeliveryAttempt, NewDelivery, QueuedDelivery } from '../../server/alerts/queue.js';

export interface TestDeliveryRow extends QueuedDelivery {
  status: 'pending' | 'claimed' | 'delivered' | 'gave-up' | 'withdrawn';
}

export function createInMemoryAlertQueueForTests(): AlertQueueStore & { rows: Map<string, TestDeliveryRow>; attempts: DeliveryAttempt[] } {
  const rows = new Map<string, TestDeliveryRow>();
  const attempts: DeliveryAttempt[] = [];
  return {
    rows,
    attempts,
    async enqueue(deliveries: readonly NewDelivery[]) {
      for (const d of deliveries) rows.set(d.id, { id: d.id, sinkId: d.sinkId, alert: d.alert, attempts: 0, nextAttemptAt: d.notBefore, status: 'pending' });
    },
    async claimDue(now: number, limit: number) {
      const due = [...rows.values()].filter((r) => r.status === 'pending' && r.nextAttemptAt <= now).sort((a, b) => a.nextAttemptAt - b.nextAttemptAt).slice(0, limit);
      for (const r of due) r.status = 'claimed';
      return due.map(({ status: _s, ...d }) => ({ ...d }));
    },
    async record(attempt: DeliveryAttempt) {
      const row = rows.get(attempt.deliveryId);
      if (!row) throw new Error(`no delivery ${attempt.deliveryId}`);
      attempts.push(attempt);
      row.attempts = attempt.attempt;
      if (attempt.result === 'retry') {
        row.status = 'pending';
        row.nextAttemptAt = attempt.nextAttemptAt!;
      } else row.status = attempt.result;
    },
  };
}
