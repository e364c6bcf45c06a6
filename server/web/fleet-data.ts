// How the fleet page and its CSV get their data: the store filters, counts and pages in SQL, so
// a view reads one page of hosts and a few aggregates, never the whole fleet. The CSV streams
// the kept rows a page at a time, by key (hostname, id), and holds no more than one page.
import type { HostSummary, ImageSummary } from '../../shared/api.js';
import type { FleetQuery, Store } from '../store/types.js';
import type { FleetData } from './fleet.js';
import { FLEET_CSV_HEADER, PAGE_SIZE, fleetCsvLines, pageOf, petTrend, trendStart, withPetShare } from './fleet-view.js';
import type { Cohort, FleetFilters } from './fleet-view.js';

/** Cohorts the fleet page lists (most pets first). */
export const FLEET_COHORTS = 20;

/** Hosts the CSV reads at a time. */
export const CSV_PAGE = 500;

/** Hosts on an outdated version the images page names (the count is of them all). */
export const OUTDATED_LISTED = 500;

/** What the images page shows. */
export interface ImagesData {
  images: ImageSummary[];
  cohorts: Cohort[];
  /** Each image's newest version: the one last seen (uploaded or announced). */
  newest: Map<string, string>;
  outdated: { total: number; hosts: HostSummary[] };
}

/** Each image name's newest version: the version seen last. Pure. */
export function newestVersions(images: readonly ImageSummary[]): Map<string, string> {
  const newest = new Map<string, string>();
  for (const i of [...images].sort((a, b) => a.lastSeen.localeCompare(b.lastSeen))) newest.set(i.name, i.version);
  return newest;
}

/**
 * The images, their cohorts, and the hosts on a version older than their image's newest: counted
 * from the cohorts' aggregates and listed a cohort at a time up to OUTDATED_LISTED, so the page
 * never reads the whole fleet.
 */
export async function imagesData(store: Store, now: Date, listed = OUTDATED_LISTED): Promise<ImagesData> {
  const [images, summary] = await Promise.all([store.listImages(), store.fleetSummary(now, 10_000)]);
  const newest = newestVersions(images);
  const behind = summary.cohorts.filter((g) => newest.has(g.image) && newest.get(g.image) !== g.version);
  const hosts: HostSummary[] = [];
  for (const g of behind) {
    if (hosts.length >= listed) break;
    hosts.push(...(await store.fleetHosts({ image: g.image, version: g.version }, { limit: listed - hosts.length }, now)));
  }
  return { images, cohorts: withPetShare(summary.cohorts), newest, outdated: { total: behind.reduce((n, g) => n + g.hosts, 0), hosts } };
}

const queryOf = ({ page: _page, ...query }: FleetFilters): FleetQuery => query;

export async function fleetData(store: Store, filters: FleetFilters, now: Date): Promise<FleetData> {
  const query = queryOf(filters);
  const [summary, total, changes] = await Promise.all([store.fleetSummary(now, FLEET_COHORTS), store.fleetCount(query, now), store.petChanges(trendStart(now))]);
  const page = pageOf(total, filters.page, PAGE_SIZE);
  const hosts = await store.fleetHosts(query, { limit: PAGE_SIZE, offset: page.offset }, now);
  return { counts: summary.counts, cohorts: withPetShare(summary.cohorts), trend: petTrend(changes.petsNow, changes.deltas, now), hosts, total, page };
}

/** The CSV of exactly the hosts the filters keep (every page), header first. */
export function fleetCsvStream(store: Store, filters: FleetFilters, now: Date, pageSize = CSV_PAGE): ReadableStream<Uint8Array> {
  const query = queryOf(filters);
  const utf8 = new TextEncoder();
  let after: { hostname: string; id: string } | undefined;
  let started = false;
  return new ReadableStream<Uint8Array>({
    async pull(out) {
      const hosts = await store.fleetHosts(query, { limit: pageSize, ...(after === undefined ? {} : { after }) }, now);
      out.enqueue(utf8.encode(`${started ? '' : FLEET_CSV_HEADER}${fleetCsvLines(hosts)}`));
      started = true;
      const last = hosts[hosts.length - 1];
      if (hosts.length < pageSize || last === undefined) out.close();
      else after = { hostname: last.hostname, id: last.id };
    },
  });
}
