// Every image and version: hosts on each, their pet share, hosts on an outdated version, and
// versions only one host runs (the proliferation worth asking about).
import type { HostSummary, ImageSummary } from '../../shared/api.js';
import type { Cohort } from './fleet-view.js';
import type { SessionUser } from '../store/types.js';
import { filtersQuery } from './fleet-view.js';
import { visible } from './host-view.js';
import { Layout } from './layout.js';
import { WideTable } from './table.js';

export function ImagesPage(props: { session: SessionUser; images: ImageSummary[]; hosts: readonly HostSummary[]; cohorts: readonly Cohort[] }) {
  const groups = props.cohorts;
  // The newest version of an image is the one last seen first (uploaded or announced).
  const newest = new Map<string, string>();
  for (const i of [...props.images].sort((a, b) => a.lastSeen.localeCompare(b.lastSeen))) newest.set(i.name, i.version);
  const outdated = props.hosts.filter((h) => h.image !== null && newest.has(h.image.name) && newest.get(h.image.name) !== h.image.version);
  return (
    <Layout title="Images" session={props.session}>
      <WideTable
        rows={props.images}
        columns={[
          { head: 'Image', cell: (i) => visible(i.name) },
          { head: 'Version', cell: (i) => <a href={`/${filtersQuery({ image: i.name, version: i.version })}`}>{visible(i.version)}</a> },
          { head: 'Source', cell: (i) => i.source },
          { head: 'Hosts', cell: (i) => i.hosts },
          { head: 'Pet share', cell: (i) => { const g = groups.find((x) => x.image === i.name && x.version === i.version); return g === undefined ? '—' : `${Math.round(g.petShare * 100)}% (${g.pets})`; } },
          { head: 'Note', cell: (i) => (i.hosts === 1 ? 'only one host runs it' : newest.get(i.name) === i.version ? 'newest' : '') },
        ]}
      />
      <h2>Hosts on an outdated version ({outdated.length})</h2>
      <ul>{outdated.slice(0, 500).map((h) => <li><a href={`/hosts/${encodeURIComponent(h.id)}`}>{visible(h.displayName)}</a>{` runs ${visible(h.image!.version)}, newest is ${visible(newest.get(h.image!.name)!)}`}</li>)}</ul>
    </Layout>
  );
}
