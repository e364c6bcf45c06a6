// Every image and version: hosts on each, their pet share, hosts on an outdated version, and
// versions only one host runs (the proliferation worth asking about).
import type { ImagesData } from './fleet-data.js';
import type { SessionUser } from '../store/types.js';
import { filtersQuery } from './fleet-view.js';
import { visible } from './host-view.js';
import { Layout } from './layout.js';
import { WideTable } from './table.js';

export function ImagesPage(props: { session: SessionUser; data: ImagesData }) {
  const { images, newest, outdated } = props.data;
  const cohort = new Map(props.data.cohorts.map((g) => [`${g.image}\u0000${g.version}`, g]));
  return (
    <Layout title="Images" session={props.session}>
      <WideTable
        rows={images}
        columns={[
          { head: 'Image', cell: (i) => visible(i.name) },
          { head: 'Version', cell: (i) => <a href={`/${filtersQuery({ image: i.name, version: i.version })}`}>{visible(i.version)}</a> },
          { head: 'Source', cell: (i) => i.source },
          { head: 'Hosts', cell: (i) => i.hosts },
          { head: 'Pet share', cell: (i) => {
            const g = cohort.get(`${i.name}\u0000${i.version}`);
            return g === undefined ? '—' : `${Math.round(g.petShare * 100)}% (${g.pets})`;
          } },
          { head: 'Note', cell: (i) => (i.hosts === 1 ? 'only one host runs it' : newest.get(i.name) === i.version ? 'newest' : '') },
        ]}
      />
      <h2>Hosts on an outdated version ({outdated.total})</h2>
      {outdated.total > outdated.hosts.length && <p>{`The first ${outdated.hosts.length}; the fleet page lists them all by image and version.`}</p>}
      <ul>{outdated.hosts.map((h) => <li><a href={`/hosts/${encodeURIComponent(h.id)}`}>{visible(h.displayName)}</a>{` runs ${visible(h.image!.version)}, newest is ${visible(newest.get(h.image!.name)!)}`}</li>)}</ul>
    </Layout>
  );
}
