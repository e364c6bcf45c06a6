// What the wire tests assert after a crash: the stored history of a host is exactly its reports.
import { expect } from 'vitest';
import type { HostFinding } from '../../shared/api.js';
import { apiGet } from './processes.js';

interface StoredReport { seq: number; hash: string; prevHash: string | null }

/** The stored history must be 1..n, each report naming the previous one's hash, no chain finding. */
export async function expectExactlyOnceInOrder(url: string, apiToken: string, agentId: string, n: number): Promise<void> {
  const { reports } = await apiGet<{ reports: StoredReport[] }>(`${url}/api/v1/hosts/${agentId}/reports`, apiToken);
  expect(reports.map((r) => r.seq)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
  for (let i = 1; i < reports.length; i++) expect(reports[i]!.prevHash).toBe(reports[i - 1]!.hash);
  const { findings } = await apiGet<{ findings: HostFinding[] }>(`${url}/api/v1/hosts/${agentId}/findings`, apiToken);
  expect(findings.filter((f) => f.kind === 'report-chain-broken')).toEqual([]);
}
