// Schema migrations, applied in order by user_version. Never edit a released entry: append one.
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE enroll_secrets (
    id TEXT PRIMARY KEY, hash BLOB NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT
  );
  CREATE TABLE api_tokens (
    id TEXT PRIMARY KEY, hash BLOB NOT NULL, role TEXT NOT NULL, created_at TEXT NOT NULL, revoked_at TEXT
  );
  -- One host per enrolled agent; the agent id is the host id.
  CREATE TABLE hosts (
    id TEXT PRIMARY KEY,
    token_hash BLOB NOT NULL,
    hostname TEXT NOT NULL,
    enrolled_at TEXT NOT NULL,
    revoked_at TEXT,
    os TEXT,
    agent_version TEXT,
    image_name TEXT,
    image_version TEXT,
    status TEXT NOT NULL DEFAULT 'stale',
    pet_since TEXT,
    drift_score INTEGER NOT NULL DEFAULT 0,
    open_findings INTEGER NOT NULL DEFAULT 0,
    last_seen TEXT,
    last_report_at TEXT,
    last_seq INTEGER NOT NULL DEFAULT 0,
    outbox_depth INTEGER NOT NULL DEFAULT 0
  );
  CREATE TABLE images (
    name TEXT NOT NULL, version TEXT NOT NULL,
    source TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL,
    PRIMARY KEY (name, version)
  ) WITHOUT ROWID;
  CREATE TABLE reports (
    id INTEGER PRIMARY KEY,
    host_id TEXT NOT NULL REFERENCES hosts(id),
    seq INTEGER NOT NULL,
    hash TEXT NOT NULL,
    prev_hash TEXT,
    kind TEXT NOT NULL,
    scanned_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    status TEXT NOT NULL,
    counts TEXT NOT NULL,
    body TEXT NOT NULL,
    UNIQUE (host_id, seq)
  );
  -- A finding row lives from the report that first showed it until the full report that no
  -- longer does (resolved_at); if it comes back it is a new row, so the history stays.
  CREATE TABLE findings (
    id INTEGER PRIMARY KEY,
    host_id TEXT NOT NULL REFERENCES hosts(id),
    key TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    ecosystem TEXT,
    name TEXT,
    path TEXT,
    detail TEXT NOT NULL,
    first_seen TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    first_seq INTEGER NOT NULL,
    last_seq INTEGER NOT NULL,
    resolved_at TEXT
  );
  CREATE UNIQUE INDEX findings_open ON findings (host_id, key) WHERE resolved_at IS NULL;
  CREATE INDEX findings_by_host ON findings (host_id, resolved_at);
  `,
  // Every stored report recounts the host's open findings by severity: let the index answer.
  `CREATE INDEX findings_open_severity ON findings (host_id, severity) WHERE resolved_at IS NULL;`,
  // Manifests uploaded by image builders (the agents only announce name and version).
  `ALTER TABLE images ADD COLUMN manifest TEXT;
   ALTER TABLE images ADD COLUMN packages INTEGER;
   ALTER TABLE images ADD COLUMN files INTEGER;`,
];
