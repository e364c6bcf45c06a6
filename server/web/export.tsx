// The compliance export: a GET form to the export API (GET /api/v1/exports), which answers with
// the file; its detached signature is at the same URL with `&signature=1`.
import type { SessionUser } from '../store/types.js';
import { Layout } from './layout.js';

export function ExportPage(props: { session: SessionUser; now: Date }) {
  const to = props.now.toISOString();
  const from = new Date(props.now.getTime() - 90 * 86_400_000).toISOString();
  return (
    <Layout title="Export" session={props.session}>
      <form method="get" action="/api/v1/exports">
        <p><label for="from">From (ISO date-time)</label><br /><input id="from" name="from" value={from} required maxlength={40} /></p>
        <p><label for="to">To (ISO date-time)</label><br /><input id="to" name="to" value={to} required maxlength={40} /></p>
        <p><label for="scope">Scope: all, image:NAME, label:KEY=VALUE or host:ID</label><br /><input id="scope" name="scope" value="all" required maxlength={300} /></p>
        <p><label for="format">Format</label><br />
          <select id="format" name="format">{['csv', 'json', 'html', 'pdf', 'ocsf'].map((f) => <option value={f}>{f}</option>)}</select></p>
        <p><label><input type="checkbox" name="signature" value="1" /> the detached signature instead of the file</label></p>
        <button type="submit">Download</button>
      </form>
    </Layout>
  );
}
