// The PostgreSQL connection: a pool (node-postgres), every statement a named prepared statement,
// transactions that hand their client to whatever runs inside them, and the schema brought up to
// date by version (schema_migrations) under a transaction-level advisory lock, so nodes starting
// together apply each migration once.
import { createHash } from 'node:crypto';
import pg from 'pg';
import type { PoolClient, QueryResultRow } from 'pg';
import { QuicksandError } from '../../../shared/errors.js';
import { arrayParameters, encodeArray } from './binary-arrays.js';
import type { ArrayElement } from './binary-arrays.js';
import { PG_MIGRATIONS } from './migrations.js';

/** What runs statements: the pool (each on its own) or one transaction's client. */
export interface Sql {
  rows<T extends QueryResultRow>(text: string, params?: readonly unknown[]): Promise<T[]>;
  row<T extends QueryResultRow>(text: string, params?: readonly unknown[]): Promise<T | undefined>;
  /** The number of rows the statement changed. */
  run(text: string, params?: readonly unknown[]): Promise<number>;
  /** Several statements without parameters (a migration), in the simple query protocol. */
  script(text: string): Promise<void>;
}

export interface PgDatabase extends Sql {
  /** Runs `fn` in one transaction (READ COMMITTED; rows that must not change are locked with FOR UPDATE). */
  tx<T>(fn: (q: Sql) => Promise<T>): Promise<T>;
  /** Where it connects, for messages (never the password). */
  where: string;
  close(): Promise<void>;
}

// bigint (counts, ids, epoch milliseconds) as a JavaScript number: every one fits in 2^53.
const INT8_OID = 20;
const types = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') =>
    oid === INT8_OID ? (v: string) => Number(v) : pg.types.getTypeParser(oid, format as 'text')) as typeof pg.types.getTypeParser,
};

/** Prepared once per connection: the statement's name is its text's hash. Its array parameters go in binary (binary-arrays.ts). */
const prepared = new Map<string, { name: string; arrays: Map<number, ArrayElement> }>();
function statement(text: string, values: readonly unknown[]): { name: string; text: string; values: unknown[] } {
  let p = prepared.get(text);
  if (p === undefined) {
    p = { name: `qs_${createHash('sha1').update(text).digest('hex').slice(0, 24)}`, arrays: arrayParameters(text) };
    prepared.set(text, p);
  }
  if (p.arrays.size === 0) return { name: p.name, text, values: values as unknown[] };
  const out = values.slice();
  for (const [i, element] of p.arrays) {
    const v = out[i];
    if (Array.isArray(v)) out[i] = encodeArray(element, v) ?? v;
  }
  return { name: p.name, text, values: out };
}

function sqlOf(exec: (s: ReturnType<typeof statement> | string) => Promise<pg.QueryResult | pg.QueryResult[]>): Sql {
  const one = async (s: ReturnType<typeof statement>): Promise<pg.QueryResult> => (await exec(s)) as pg.QueryResult;
  return {
    async script(text: string) {
      await exec(text);
    },
    async rows<T extends QueryResultRow>(text: string, params: readonly unknown[] = []) {
      return (await one(statement(text, params))).rows as T[];
    },
    async row<T extends QueryResultRow>(text: string, params: readonly unknown[] = []) {
      return (await one(statement(text, params))).rows[0] as T | undefined;
    },
    async run(text: string, params: readonly unknown[] = []) {
      return (await one(statement(text, params))).rowCount ?? 0;
    },
  };
}

/** Host and port of a postgres:// URL, as the messages name them (the socket folder, if one is given). */
export function describeUrl(url: string): string {
  try {
    const u = new URL(url);
    const socket = u.searchParams.get('host');
    const host = socket ?? (u.hostname === '' ? 'localhost' : u.hostname);
    return `${host}${socket === null ? `:${u.port === '' ? '5432' : u.port}` : ` (port ${u.port === '' ? '5432' : u.port})`}/${decodeURIComponent(u.pathname.slice(1))}`;
  } catch {
    return 'the given address';
  }
}

/** A connection failure in one sentence: where, why, what to do. Never a stack trace. */
export function connectionError(where: string, err: unknown): QuicksandError {
  const e = err as NodeJS.ErrnoException & { code?: string };
  const why =
    e.code === 'ECONNREFUSED' || e.code === 'ENOENT'
      ? 'nothing accepts connections there'
      : e.code === 'ENOTFOUND' || e.code === 'EAI_AGAIN'
        ? 'the host name does not resolve'
        : e.code === 'ETIMEDOUT'
          ? 'the connection timed out'
          : e.code === '28P01' || e.code === '28000'
            ? 'the user or password was refused'
            : e.code === '3D000'
              ? 'the database does not exist'
              : (e.message ?? String(err));
  const todo = e.code === '3D000' ? 'create it (createdb) or fix the --db URL' : 'check that PostgreSQL is running there and that the --db URL (or QUICKSAND_DB) names the right host, port, user and database';
  return new QuicksandError('DB_UNUSABLE', `cannot reach PostgreSQL at ${where}: ${why}; ${todo}`, { cause: err });
}

/** Deadlock detected, serialization failure: the transaction may simply run again. */
const RETRYABLE = new Set(['40P01', '40001']);

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ENOENT', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'ECONNRESET', '28P01', '28000', '3D000', '57P01', '57P03']);

/** True for an error that says the database cannot be reached now (not a statement's fault). */
export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return (typeof code === 'string' && CONNECTION_CODES.has(code)) || (err instanceof Error && /Connection terminated|connect ECONNREFUSED/.test(err.message));
}

/** Opens a pool on `url`, checks that it connects, and applies the migrations it lacks. */
export async function openPostgres(url: string, opts: { max?: number; migrate?: boolean } = {}): Promise<PgDatabase> {
  const where = describeUrl(url);
  const pool = new pg.Pool({ connectionString: url, max: opts.max ?? 10, types, connectionTimeoutMillis: 10_000, application_name: 'quicksand-server' });
  // An idle client that loses its connection must not take the process down: the next query fails instead.
  pool.on('error', () => {});
  const query = (s: ReturnType<typeof statement> | string): Promise<pg.QueryResult> =>
    (typeof s === 'string' ? pool.query(s) : pool.query(s)).catch((err: unknown) => {
      throw isConnectionError(err) ? connectionError(where, err) : err;
    });
  const db: PgDatabase = {
    ...sqlOf(query),
    where,
    async tx(fn) {
      // A deadlock (two nodes locking rows in another order, as a rule change recounting every
      // host beside an ingest) rolls one back: it runs again, a few times, from the start.
      for (let attempt = 1; ; attempt++) {
        try {
          return await once(fn);
        } catch (err) {
          if (attempt >= 3 || !RETRYABLE.has((err as { code?: string }).code ?? '')) throw err;
        }
      }
    },
    close: () => pool.end(),
  };
  async function once<T>(fn: (q: Sql) => Promise<T>): Promise<T> {
    let client: PoolClient;
    try {
      client = await pool.connect();
    } catch (err) {
      throw connectionError(where, err);
    }
    try {
      await client.query('BEGIN');
      const out = await fn(sqlOf((s) => (typeof s === 'string' ? client.query(s) : client.query(s))));
      await client.query('COMMIT');
      return out;
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      throw isConnectionError(err) ? connectionError(where, err) : err;
    } finally {
      client.release();
    }
  }
  try {
    await db.run('SELECT 1');
    if (opts.migrate !== false) await migrate(db);
  } catch (err) {
    await pool.end().catch(() => {});
    throw err;
  }
  return db;
}

/** Why this database cannot be written now (a read-only standby, no answer), or null when it can. */
export async function writeProblem(db: PgDatabase): Promise<string | null> {
  try {
    const r = await db.row<{ ro: string }>("SELECT current_setting('transaction_read_only') AS ro");
    return r?.ro === 'off' ? null : `the database ${db.where} is read-only (a standby?)`;
  } catch (err) {
    return (err as Error).message;
  }
}

/** Any number: the lock that serialises migrations between nodes starting at once. */
const MIGRATION_LOCK = 0x5153_0001;

/** Applies the migrations past the database's latest version, each in its own transaction; returns those applied. */
export async function migrate(db: PgDatabase, now: () => Date = () => new Date()): Promise<number[]> {
  await db.run('CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied_at text NOT NULL)').catch(async (err: unknown) => {
    // Two nodes creating it at once: one wins, the other sees it exist.
    if ((err as { code?: string }).code !== '23505') throw err;
  });
  const applied: number[] = [];
  for (;;) {
    const done = await db.tx(async (q) => {
      await q.run('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK]);
      const v = (await q.row<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations'))?.v ?? 0;
      if (v > PG_MIGRATIONS.length) {
        throw new QuicksandError('DB_UNUSABLE', `database ${db.where} has schema version ${v}, this server knows up to ${PG_MIGRATIONS.length}: upgrade quicksand-server`);
      }
      if (v === PG_MIGRATIONS.length) return true;
      await q.script(PG_MIGRATIONS[v]!);
      await q.run('INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)', [v + 1, now().toISOString()]);
      applied.push(v + 1);
      return false;
    });
    if (done) return applied;
  }
}
