// The ingest batch histograms on /metrics: cumulative buckets, a count and a sum per histogram.
import { describe, expect, it } from 'vitest';
import { createMetrics } from './metrics.js';

describe('metrics', () => {
  it('renders each ingest batch in the items, wait and write histograms', () => {
    const m = createMetrics({ node: 'n1' });
    m.observeIngestBatch(8, 0.002, 0.012);
    m.observeIngestBatch(700, 0.3, 1.2);
    const text = m.render(0, {});
    const sample = (name: string): number => Number(new RegExp(`^${name.replace(/[{}+.]/g, '\\$&')} (\\S+)$`, 'm').exec(text)?.[1]);
    expect(sample('quicksand_ingest_batch_items_bucket{node="n1",le="10"}')).toBe(1);
    expect(sample('quicksand_ingest_batch_items_bucket{node="n1",le="500"}')).toBe(1);
    expect(sample('quicksand_ingest_batch_items_bucket{node="n1",le="1000"}')).toBe(2);
    expect(sample('quicksand_ingest_batch_items_sum{node="n1"}')).toBe(708);
    expect(sample('quicksand_ingest_batch_wait_seconds_bucket{node="n1",le="0.005"}')).toBe(1);
    expect(sample('quicksand_ingest_batch_wait_seconds_bucket{node="n1",le="0.25"}')).toBe(1);
    expect(sample('quicksand_ingest_batch_wait_seconds_bucket{node="n1",le="0.5"}')).toBe(2);
    expect(sample('quicksand_ingest_batch_seconds_bucket{node="n1",le="1"}')).toBe(1);
    expect(sample('quicksand_ingest_batch_seconds_bucket{node="n1",le="+Inf"}')).toBe(2);
    expect(sample('quicksand_ingest_batch_seconds_count{node="n1"}')).toBe(2);
    expect(text).toContain('# TYPE quicksand_ingest_batch_seconds histogram');
  });
});
