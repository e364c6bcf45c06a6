// Compliance exports (streamed, signed), the key that signs them, and host attestations.
import type { Hono } from 'hono';
import { QuicksandError } from '../../shared/errors.js';
import { EXPORT_ROLES, actorOf, requireRole } from './context.js';
import type { AppDeps, Env, ExportDeps } from './context.js';

/** GET /api/v1/exports, /api/v1/signing-key, /api/v1/hosts/:id/attestation. */
export function exportRoutes(app: Hono<Env>, deps: AppDeps): void {
  const { clock } = deps;
  const service = (): ExportDeps => {
    if (deps.exports === undefined) throw new QuicksandError('NOT_READY', 'this server was started without exports');
    return deps.exports;
  };
  app.get('/api/v1/exports', async (c) => {
    requireRole(c, EXPORT_ROLES);
    const query = c.req.query();
    const exports = service();
    const { job, signatureOnly } = await exports.run(query, actorOf(c), clock());
    if (signatureOnly) {
      c.header('Content-Disposition', `attachment; filename="${job.name}.sig.json"`);
      return c.json(await exports.signatureOf(query, job));
    }
    const chunks = job.body[Symbol.asyncIterator]();
    const body = new ReadableStream<Uint8Array>({
      async pull(controller) {
        const next = await chunks.next();
        if (next.done === true) {
          exports.remember(query, job);
          controller.close();
        } else controller.enqueue(next.value);
      },
      async cancel() {
        await chunks.return?.(undefined);
      },
    });
    return new Response(body, { status: 200, headers: { 'Content-Type': job.contentType, 'Content-Disposition': `attachment; filename="${job.name}"` } });
  });
  app.get('/api/v1/signing-key', (c) => {
    requireRole(c, EXPORT_ROLES);
    const exports = service();
    c.header('X-Quicksand-Keyid', exports.keyid);
    return c.text(exports.publicKeyPem, 200, { 'Content-Type': 'application/x-pem-file' });
  });
  app.get('/api/v1/hosts/:id/attestation', async (c) => {
    requireRole(c, EXPORT_ROLES);
    return c.json(await service().attest(c.req.param('id'), clock()));
  });
}
