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
  // Issue 6: rules, alert sinks, the durable delivery queue, per-host alert memory, watch state.
  `ALTER TABLE hosts ADD COLUMN watch_state TEXT;
   ALTER TABLE hosts ADD COLUMN watch_reason TEXT;
   ALTER TABLE hosts ADD COLUMN labels TEXT NOT NULL DEFAULT '{}';
   -- What the rules decided: the severity in force is in severity; the agent's is in detail.
   ALTER TABLE findings ADD COLUMN change_set TEXT;
   ALTER TABLE findings ADD COLUMN decision TEXT;
   -- 1 when a rule suppressed or auto-approved it: stored, never alerted, never makes a pet.
   ALTER TABLE findings ADD COLUMN waived INTEGER NOT NULL DEFAULT 0;
   CREATE TABLE rule_sets (
     version INTEGER PRIMARY KEY, body TEXT NOT NULL, created_at TEXT NOT NULL, created_by TEXT
   );
   CREATE TABLE alert_sinks (
     id TEXT PRIMARY KEY, config TEXT NOT NULL, created_at TEXT NOT NULL
   );
   CREATE TABLE host_alert_memory (
     host_id TEXT PRIMARY KEY REFERENCES hosts(id), memory TEXT NOT NULL, updated_at TEXT NOT NULL
   );
   CREATE TABLE alert_deliveries (
     id TEXT PRIMARY KEY,
     sink_id TEXT NOT NULL,
     host_id TEXT,
     action TEXT NOT NULL,
     dedup_key TEXT NOT NULL,
     alert TEXT NOT NULL,
     state TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     next_attempt_at INTEGER NOT NULL,
     claimed_until INTEGER,
     created_at TEXT NOT NULL
   );
   CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE state IN ('pending', 'claimed');
   -- Evidence that alerts were handled: one row per attempt, never changed.
   CREATE TABLE alert_attempts (
     id INTEGER PRIMARY KEY,
     delivery_id TEXT NOT NULL REFERENCES alert_deliveries(id),
     sink_id TEXT NOT NULL,
     attempt INTEGER NOT NULL,
     at INTEGER NOT NULL,
     ok INTEGER NOT NULL,
     status INTEGER,
     error TEXT,
     result TEXT NOT NULL,
     next_attempt_at INTEGER
   );
   CREATE INDEX alert_attempts_by_delivery ON alert_attempts (delivery_id);
   CREATE TRIGGER alert_attempts_no_update BEFORE UPDATE ON alert_attempts BEGIN SELECT RAISE(ABORT, 'alert_attempts is append-only'); END;`,
  // Issue 6: triage. Approvals bind to the state of the change they accept (identity): the same
  // file changed again is a new change. The audit log is append-only.
  `ALTER TABLE findings ADD COLUMN identity TEXT;
   CREATE TABLE approvals (
     id INTEGER PRIMARY KEY,
     host_id TEXT NOT NULL REFERENCES hosts(id),
     finding_id INTEGER NOT NULL REFERENCES findings(id),
     identity TEXT NOT NULL,
     kind TEXT NOT NULL,
     reason TEXT NOT NULL,
     ticket TEXT,
     expires_at TEXT,
     created_at TEXT NOT NULL,
     created_by TEXT NOT NULL,
     reopened_at TEXT,
     reopened_by TEXT,
     -- Set by the expiry schedule when it noticed expires_at passed (and counted the host again).
     expired_at TEXT
   );
   CREATE INDEX approvals_by_finding ON approvals (finding_id) WHERE reopened_at IS NULL;
   CREATE INDEX approvals_expiring ON approvals (expires_at) WHERE reopened_at IS NULL AND expires_at IS NOT NULL;
   CREATE TABLE host_baselines (
     id INTEGER PRIMARY KEY,
     host_id TEXT NOT NULL REFERENCES hosts(id),
     version INTEGER NOT NULL,
     image_name TEXT,
     image_version TEXT,
     accepted TEXT NOT NULL,
     created_at TEXT NOT NULL,
     created_by TEXT NOT NULL,
     UNIQUE (host_id, version)
   );
   CREATE TABLE audit_log (
     id INTEGER PRIMARY KEY,
     at TEXT NOT NULL,
     actor TEXT NOT NULL,
     role TEXT NOT NULL,
     action TEXT NOT NULL,
     target TEXT NOT NULL,
     reason TEXT,
     detail TEXT NOT NULL
   );
   CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
   CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;`,
  // Host labels from two sources: what the API set and what the agent declared (`run --label`).
  // `labels` stays the labels in force (the agent's under the API's), as rules read it.
  `ALTER TABLE hosts ADD COLUMN labels_api TEXT NOT NULL DEFAULT '{}';
   ALTER TABLE hosts ADD COLUMN labels_agent TEXT NOT NULL DEFAULT '{}';
   UPDATE hosts SET labels_api = labels;`,
  // The change ticket a finding carried when the server first saw it (the operator declared it on
  // the host before the change); kept while the finding stays open, whatever later reports say.
  `ALTER TABLE findings ADD COLUMN ticket TEXT;
   CREATE INDEX findings_open_ticketed ON findings (host_id) WHERE resolved_at IS NULL AND ticket IS NOT NULL;`,
  // Re-baselines build a manifest version: the accepted changes applied to the manifest the host
  // was scanned against, completed from the observation its agent uploads on request. Rows of
  // before this hold only the accepted findings ('accepted-only').
  `ALTER TABLE host_baselines ADD COLUMN state TEXT NOT NULL DEFAULT 'accepted-only';
   ALTER TABLE host_baselines ADD COLUMN manifest TEXT;
   ALTER TABLE host_baselines ADD COLUMN parent_baseline INTEGER;
   ALTER TABLE host_baselines ADD COLUMN parent_source TEXT;
   ALTER TABLE host_baselines ADD COLUMN packages INTEGER;
   ALTER TABLE host_baselines ADD COLUMN files INTEGER;
   ALTER TABLE host_baselines ADD COLUMN notes TEXT;
   ALTER TABLE host_baselines ADD COLUMN ready_at TEXT;
   -- The server baseline version the agent said (hello) it scans against; null: the image's.
   ALTER TABLE hosts ADD COLUMN baseline_version INTEGER;`,
  // Issue 12: held alerts are released on a timer (release_at, epoch ms); a queued trigger keeps
  // the identities of its findings (basis) to be composed again when sent; an alert no sink took
  // is kept as a 'planned' row with its reason; the change sets agents name, per host.
  `ALTER TABLE host_alert_memory ADD COLUMN release_at INTEGER;
   CREATE INDEX host_alert_memory_release ON host_alert_memory (release_at) WHERE release_at IS NOT NULL;
   ALTER TABLE alert_deliveries ADD COLUMN basis TEXT;
   ALTER TABLE alert_deliveries ADD COLUMN reason TEXT;
   CREATE TABLE change_sets (
     host_id TEXT NOT NULL REFERENCES hosts(id),
     id TEXT NOT NULL,
     tool TEXT NOT NULL,
     command TEXT,
     user_name TEXT,
     started_at TEXT,
     ended_at TEXT,
     packages INTEGER NOT NULL,
     ticket TEXT,
     first_seen TEXT NOT NULL,
     last_seen TEXT NOT NULL,
     PRIMARY KEY (host_id, id)
   ) WITHOUT ROWID;
   CREATE INDEX findings_by_change_set ON findings (host_id, change_set) WHERE change_set IS NOT NULL;`,
  // Issue 12: which machine an identity belongs to (machine-id at enrolment, boot ids from hello),
  // names for API tokens and for the actors of the audit log, and `enrolled` for a host that
  // never reported (it was `stale`).
  `ALTER TABLE hosts ADD COLUMN machine_id TEXT;
   ALTER TABLE hosts ADD COLUMN boot_id TEXT;
   ALTER TABLE hosts ADD COLUMN prev_boot_id TEXT;
   ALTER TABLE api_tokens ADD COLUMN name TEXT;
   ALTER TABLE audit_log ADD COLUMN actor_name TEXT;
   UPDATE hosts SET status = 'enrolled' WHERE status = 'stale' AND last_report_at IS NULL;`,
  // Issue 11: enrolment secrets expire and run out of uses; both may be unlimited (null).
  `ALTER TABLE enroll_secrets ADD COLUMN expires_at TEXT;
   ALTER TABLE enroll_secrets ADD COLUMN max_uses INTEGER;
   ALTER TABLE enroll_secrets ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;`,
  // Issue 17 (last: after every step of main): containers are children of their host. Each has a hosts row of its own (findings,
  // status and triage work as for any host; it has no token and cannot connect) and a containers
  // row saying whose it is and what it runs. Host lists leave the children out.
  `ALTER TABLE hosts ADD COLUMN parent_id TEXT REFERENCES hosts(id);
   CREATE TABLE containers (
     host_id TEXT PRIMARY KEY REFERENCES hosts(id),
     parent_id TEXT NOT NULL REFERENCES hosts(id),
     runtime TEXT NOT NULL,
     container_id TEXT NOT NULL,
     name TEXT,
     image_ref TEXT,
     image_id TEXT,
     state TEXT NOT NULL,
     first_seen TEXT NOT NULL,
     last_seen TEXT NOT NULL,
     last_seq INTEGER NOT NULL,
     gone_at TEXT,
     UNIQUE (parent_id, runtime, container_id)
   );
   CREATE INDEX containers_by_image_ref ON containers (image_ref);
   CREATE INDEX containers_by_image_id ON containers (image_id);`,
  // Issue 14: console users (scrypt hashes), their sessions (only a hash of the session secret is
  // kept), failed logins per account and per address (the lockout), and API tokens that belong to
  // a user (they carry that user's role, and stop with the user).
  `CREATE TABLE users (
     name TEXT PRIMARY KEY,
     role TEXT NOT NULL,
     password_hash TEXT NOT NULL,
     created_at TEXT NOT NULL,
     password_changed_at TEXT NOT NULL,
     disabled_at TEXT,
     last_login_at TEXT
   );
   CREATE TABLE sessions (
     id TEXT PRIMARY KEY,
     hash BLOB NOT NULL,
     user_name TEXT NOT NULL REFERENCES users(name),
     csrf TEXT NOT NULL,
     created_at TEXT NOT NULL,
     last_seen_at TEXT NOT NULL,
     expires_at TEXT NOT NULL,
     idle_ms INTEGER NOT NULL
   );
   CREATE INDEX sessions_by_user ON sessions (user_name);
   CREATE TABLE login_failures (
     key TEXT PRIMARY KEY,
     failures INTEGER NOT NULL,
     window_start TEXT NOT NULL,
     locked_until TEXT
   );
   ALTER TABLE api_tokens ADD COLUMN user_name TEXT REFERENCES users(name);`,
  // Issue 13 (several nodes on one database): which node holds which agent's socket; commands
  // for agents as rows, delivered by that node; leases so a job runs on one node at a time.
  `CREATE TABLE agent_sessions (
     agent_id TEXT PRIMARY KEY REFERENCES hosts(id),
     node_id TEXT NOT NULL,
     connected_at TEXT NOT NULL,
     seen_at TEXT NOT NULL
   );
   CREATE INDEX agent_sessions_by_node ON agent_sessions (node_id);
   CREATE TABLE agent_commands (
     id INTEGER PRIMARY KEY,
     agent_id TEXT NOT NULL REFERENCES hosts(id),
     command TEXT NOT NULL,
     baseline INTEGER,
     created_at TEXT NOT NULL,
     expires_at TEXT NOT NULL,
     delivered_at TEXT,
     delivered_by TEXT
   );
   CREATE INDEX agent_commands_pending ON agent_commands (agent_id, id) WHERE delivered_at IS NULL;
   CREATE TABLE leases (
     name TEXT PRIMARY KEY,
     holder TEXT NOT NULL,
     expires_at INTEGER NOT NULL
   );`,
  // Issue 14 (the console): a true history of host status changes, written in the transaction
  // that changes the status (host-status.ts), seeded from each host's status now; and indexes for
  // the fleet page's filters and pages (fleet-query.ts), ordered as the page is (hostname, id).
  `CREATE TABLE host_status_changes (
     id INTEGER PRIMARY KEY,
     host_id TEXT NOT NULL REFERENCES hosts(id),
     from_status TEXT,
     to_status TEXT NOT NULL,
     at TEXT NOT NULL,
     cause TEXT NOT NULL,
     actor TEXT
   );
   CREATE INDEX host_status_changes_by_host ON host_status_changes (host_id, id);
   CREATE INDEX host_status_changes_by_time ON host_status_changes (at);
   INSERT INTO host_status_changes (host_id, from_status, to_status, at, cause, actor)
     SELECT id, NULL, status, CASE WHEN status = 'pet' THEN coalesce(pet_since, last_report_at, enrolled_at) ELSE coalesce(last_report_at, enrolled_at) END, 'migration', NULL
     FROM hosts ORDER BY id;
   CREATE INDEX hosts_fleet ON hosts (hostname, id) WHERE parent_id IS NULL;
   CREATE INDEX hosts_fleet_by_status ON hosts (status, hostname, id) WHERE parent_id IS NULL;
   CREATE INDEX hosts_fleet_by_image ON hosts (image_name, image_version, status) WHERE parent_id IS NULL;
   -- Which of a page's hostnames other hosts (containers too) share: a probe per name, not a scan.
   CREATE INDEX hosts_by_hostname ON hosts (hostname);
   CREATE INDEX audit_log_by_target ON audit_log (target, id);`,
  // The alert queue's lookups: a resolve finds the triggers that went (or will go) out by dedup
  // key, and a page of deliveries reads in order and stops at its limit. Without them each was a
  // scan of every delivery kept, inside the ingest's write transaction for a resolve (24 ms at
  // 100k rows, 0.01 ms with the index). Partial, with the lookup's own terms: the planned row
  // every alerted report keeps stays out of it, so its insert adds no random page to the commit.
  // The prune asks, of each old delivered trigger, whether its resolve was queued: the few
  // resolve rows have an index of their own.
  `CREATE INDEX alert_deliveries_by_dedup ON alert_deliveries (dedup_key) WHERE action = 'trigger' AND state IN ('pending', 'claimed', 'delivered');
   CREATE INDEX alert_deliveries_resolves ON alert_deliveries (dedup_key) WHERE action = 'resolve';
   CREATE INDEX alert_deliveries_order ON alert_deliveries (created_at);`,
  // A node's heartbeat is one row, as on PostgreSQL: a session is live while its node's row is,
  // instead of every 10 s rewriting the seen time of each of the node's agents' sessions.
  `CREATE TABLE cluster_nodes (node_id TEXT PRIMARY KEY, seen_at TEXT NOT NULL);
   INSERT INTO cluster_nodes (node_id, seen_at) SELECT node_id, max(seen_at) FROM agent_sessions GROUP BY node_id;`,
];
