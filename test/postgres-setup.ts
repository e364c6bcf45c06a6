// Global setup: one throwaway PostgreSQL cluster for the whole run (test/helpers/postgres.ts), with
// a migrated template database each test copies (store-backends.ts). Stopped at the end; the
// server also dies with this process if the run is killed.
import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startCluster } from './helpers/postgres.js';
import { openPostgres } from '../server/store/postgres/db.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** postgres:// URL of the cluster's maintenance database; `{db}` stands for a database name. */
    postgresUrl: string;
  }
}

export const TEMPLATE_DATABASE = 'quicksand_template';

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const cluster = await startCluster();
  try {
    const admin = new pg.Client({ connectionString: cluster.url('postgres') });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${TEMPLATE_DATABASE}`);
    await admin.end();
    const db = await openPostgres(cluster.url(TEMPLATE_DATABASE));
    await db.close();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  project.provide('postgresUrl', cluster.url('{db}'));
  return () => cluster.stop();
}
