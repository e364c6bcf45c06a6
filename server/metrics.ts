// In-process counters rendered as Prometheus text. Kept deliberately small: no client library.

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
/** Items per ingest batch: a handful while the database keeps up, up to the writer's 2,000 when it does not. */
const BATCH_ITEM_BUCKETS = [1, 10, 50, 100, 250, 500, 1000, 2000];

/** A Prometheus histogram with fixed buckets. */
interface Histogram {
  observe(value: number): void;
  render(name: string, help: string, labels: (...extra: string[]) => string): string[];
}

function histogram(bounds: readonly number[]): Histogram {
  const buckets = new Array<number>(bounds.length).fill(0);
  let count = 0;
  let sum = 0;
  return {
    observe(value) {
      count++;
      sum += value;
      for (let i = 0; i < bounds.length; i++) if (value <= bounds[i]!) buckets[i]!++;
    },
    render(name, help, labels) {
      const lines = [`# HELP ${name} ${help}`, `# TYPE ${name} histogram`];
      bounds.forEach((le, i) => lines.push(`${name}_bucket${labels(`le="${le}"`)} ${buckets[i]}`));
      lines.push(`${name}_bucket${labels('le="+Inf"')} ${count}`, `${name}_sum${labels()} ${sum}`, `${name}_count${labels()} ${count}`);
      return lines;
    },
  };
}

export interface Metrics {
  connected: number;
  reportsStored: number;
  reportsDuplicate: number;
  framesRejected: Map<string, number>;
  upgradesRefused: Map<string, number>;
  /** Last outbox depth each connected agent reported. */
  outboxDepth: Map<string, number>;
  /** Items waiting for the ingest writer now, and the most since start. */
  ingestQueue: number;
  ingestQueuePeak: number;
  /** Times a connection was paused because the ingest queue was full (its frames waited, none refused). */
  ingestWaits: number;
  observeIngestLatency(seconds: number, nowMs: number): void;
  /**
   * One batch the ingest writer wrote (or failed to): its items, how long the oldest of them
   * waited in the queue for it to start, and how long its transaction took. A report's
   * receive→commit is the first wait plus the second: which of them grows says whether the
   * database is slow or the writer is behind.
   */
  observeIngestBatch(items: number, waitedSeconds: number, writeSeconds: number): void;
  countStored(n: number, nowMs: number): void;
  reject(map: Map<string, number>, key: string): void;
  reportsPerSecond(nowMs: number): number;
  render(nowMs: number, hosts: Record<string, number>): string;
}

/**
 * `node`: this server process's node id, a label on every sample, so the nodes behind one balancer
 * can be told apart whichever of them answered the scrape.
 */
export function createMetrics(opts: { node?: string } = {}): Metrics {
  const nodeLabel = opts.node === undefined ? [] : [`node="${opts.node.replace(/["\\\n]/g, '_')}"`];
  /** A sample's labels, the node's first: `{node="a",code="X"}`, or nothing without any. */
  const labels = (...extra: string[]): string => {
    const all = [...nodeLabel, ...extra];
    return all.length === 0 ? '' : `{${all.join(',')}}`;
  };
  const latency = histogram(LATENCY_BUCKETS);
  const batchItems = histogram(BATCH_ITEM_BUCKETS);
  const batchWait = histogram(LATENCY_BUCKETS);
  const batchWrite = histogram(LATENCY_BUCKETS);
  // Stored reports per second over the last 10 s: one slot per second.
  const window = new Map<number, number>();

  const m: Metrics = {
    connected: 0,
    reportsStored: 0,
    reportsDuplicate: 0,
    framesRejected: new Map(),
    upgradesRefused: new Map(),
    outboxDepth: new Map(),
    ingestQueue: 0,
    ingestQueuePeak: 0,
    ingestWaits: 0,
    observeIngestLatency(seconds) {
      latency.observe(seconds);
    },
    observeIngestBatch(items, waitedSeconds, writeSeconds) {
      batchItems.observe(items);
      batchWait.observe(waitedSeconds);
      batchWrite.observe(writeSeconds);
    },
    countStored(n, nowMs) {
      m.reportsStored += n;
      const slot = Math.floor(nowMs / 1000);
      window.set(slot, (window.get(slot) ?? 0) + n);
      for (const k of window.keys()) if (k < slot - 10) window.delete(k);
    },
    reject(map, key) {
      map.set(key, (map.get(key) ?? 0) + 1);
    },
    reportsPerSecond(nowMs) {
      const slot = Math.floor(nowMs / 1000);
      let n = 0;
      // The last 10 complete seconds: the current one is still filling.
      for (let s = slot - 10; s < slot; s++) n += window.get(s) ?? 0;
      return n / 10;
    },
    render(nowMs, hosts) {
      const lines: string[] = [];
      const gauge = (name: string, help: string, value: number, type = 'gauge'): void => {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels()} ${value}`);
      };
      gauge('quicksand_agents_connected', 'Agents holding a stream connection.', m.connected);
      gauge('quicksand_reports_stored_total', 'Reports committed to the store.', m.reportsStored, 'counter');
      gauge('quicksand_reports_duplicate_total', 'Replayed reports that were already stored (acked again, not stored).', m.reportsDuplicate, 'counter');
      gauge('quicksand_ingest_queue', 'Frames waiting for the ingest writer.', m.ingestQueue);
      gauge('quicksand_ingest_queue_peak', 'Most frames that waited for the ingest writer at once since start.', m.ingestQueuePeak);
      gauge('quicksand_ingest_waits_total', 'Times a connection was paused because the ingest queue was full: its frames waited, none was refused.', m.ingestWaits, 'counter');
      gauge('quicksand_reports_per_second', 'Reports stored per second over the last 10 s.', m.reportsPerSecond(nowMs));
      lines.push(...latency.render('quicksand_ingest_latency_seconds', 'Time from receiving a report to its commit.', labels));
      lines.push(...batchItems.render('quicksand_ingest_batch_items', 'Items per batch the ingest writer wrote.', labels));
      lines.push(...batchWait.render('quicksand_ingest_batch_wait_seconds', "How long a batch's oldest item waited in the queue before the batch started.", labels));
      lines.push(...batchWrite.render('quicksand_ingest_batch_seconds', "How long a batch's transaction took, from its start to its commit (or failure).", labels));
      let depthSum = 0;
      let depthMax = 0;
      for (const d of m.outboxDepth.values()) {
        depthSum += d;
        depthMax = Math.max(depthMax, d);
      }
      gauge('quicksand_agent_outbox_depth_sum', 'Reports waiting in the outboxes of connected agents, as they last reported.', depthSum);
      gauge('quicksand_agent_outbox_depth_max', 'Deepest outbox among connected agents.', depthMax);
      lines.push('# HELP quicksand_frames_rejected_total Frames answered with an error, by code.', '# TYPE quicksand_frames_rejected_total counter');
      for (const [code, n] of m.framesRejected) lines.push(`quicksand_frames_rejected_total${labels(`code="${code}"`)} ${n}`);
      lines.push('# HELP quicksand_upgrades_refused_total Stream upgrades refused, by reason.', '# TYPE quicksand_upgrades_refused_total counter');
      for (const [reason, n] of m.upgradesRefused) lines.push(`quicksand_upgrades_refused_total${labels(`reason="${reason}"`)} ${n}`);
      lines.push('# HELP quicksand_hosts Hosts by status.', '# TYPE quicksand_hosts gauge');
      for (const [status, n] of Object.entries(hosts)) lines.push(`quicksand_hosts${labels(`status="${status}"`)} ${n}`);
      return `${lines.join('\n')}\n`;
    },
  };
  return m;
}
