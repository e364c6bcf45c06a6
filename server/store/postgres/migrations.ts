// The PostgreSQL schema, applied in order by version (schema_migrations). Never edit a released
// entry: append one. Version 1 is the SQLite schema as its migrations left it, in one step.
// Text compares as SQLite's does (bytewise, COLLATE "C") whatever the database's locale, so
// orderings and ISO-timestamp comparisons are the same on both backends. Nothing is partitioned:
// the idempotency keys ((host_id, seq) of reports) are plain unique constraints.
const T = 'text COLLATE "C"';

export const PG_MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE enroll_secrets (
    id ${T} PRIMARY KEY, hash bytea NOT NULL, created_at ${T} NOT NULL, revoked_at ${T},
    expires_at ${T}, max_uses integer, uses integer NOT NULL DEFAULT 0
  );
  CREATE TABLE api_tokens (
    id ${T} PRIMARY KEY, hash bytea NOT NULL, role ${T} NOT NULL, created_at ${T} NOT NULL, revoked_at ${T}, name ${T}
  );
  CREATE TABLE hosts (
    id ${T} PRIMARY KEY,
    token_hash bytea NOT NULL,
    hostname ${T} NOT NULL,
    enrolled_at ${T} NOT NULL,
    revoked_at ${T},
    os ${T},
    agent_version ${T},
    image_name ${T},
    image_version ${T},
    status ${T} NOT NULL DEFAULT 'stale',
    pet_since ${T},
    drift_score integer NOT NULL DEFAULT 0,
    open_findings integer NOT NULL DEFAULT 0,
    last_seen ${T},
    last_report_at ${T},
    last_seq bigint NOT NULL DEFAULT 0,
    outbox_depth bigint NOT NULL DEFAULT 0,
    watch_state ${T},
    watch_reason ${T},
    labels ${T} NOT NULL DEFAULT '{}',
    labels_api ${T} NOT NULL DEFAULT '{}',
    labels_agent ${T} NOT NULL DEFAULT '{}',
    baseline_version integer,
    machine_id ${T},
    boot_id ${T},
    prev_boot_id ${T},
    parent_id ${T} REFERENCES hosts(id)
  );
  -- The console's host list (by name), its image filter, the stale schedule.
  CREATE INDEX hosts_by_name ON hosts (hostname, id) WHERE parent_id IS NULL;
  CREATE INDEX hosts_by_image ON hosts (image_name, image_version);
  CREATE INDEX hosts_by_last_report ON hosts (last_report_at) WHERE status <> 'stale' AND revoked_at IS NULL;
  CREATE TABLE images (
    name ${T} NOT NULL, version ${T} NOT NULL,
    source ${T} NOT NULL, first_seen ${T} NOT NULL, last_seen ${T} NOT NULL,
    manifest ${T}, packages integer, files integer,
    PRIMARY KEY (name, version)
  );
  CREATE TABLE reports (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host_id ${T} NOT NULL REFERENCES hosts(id),
    seq bigint NOT NULL,
    hash ${T} NOT NULL,
    prev_hash ${T},
    kind ${T} NOT NULL,
    scanned_at ${T} NOT NULL,
    received_at ${T} NOT NULL,
    status ${T} NOT NULL,
    counts ${T} NOT NULL,
    body ${T} NOT NULL,
    -- A replay of (agent, seq), through any node, is a no-op.
    UNIQUE (host_id, seq)
  );
  CREATE INDEX reports_by_received ON reports (received_at);
  CREATE TABLE findings (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host_id ${T} NOT NULL REFERENCES hosts(id),
    key ${T} NOT NULL,
    source ${T} NOT NULL,
    kind ${T} NOT NULL,
    severity ${T} NOT NULL,
    ecosystem ${T},
    name ${T},
    path ${T},
    detail ${T} NOT NULL,
    first_seen ${T} NOT NULL,
    last_seen ${T} NOT NULL,
    first_seq bigint NOT NULL,
    last_seq bigint NOT NULL,
    resolved_at ${T},
    change_set ${T},
    decision ${T},
    waived integer NOT NULL DEFAULT 0,
    identity ${T},
    ticket ${T}
  );
  CREATE UNIQUE INDEX findings_open ON findings (host_id, key) WHERE resolved_at IS NULL;
  CREATE INDEX findings_by_host ON findings (host_id, resolved_at);
  CREATE INDEX findings_open_severity ON findings (host_id, severity) WHERE resolved_at IS NULL;
  CREATE INDEX findings_open_ticketed ON findings (host_id) WHERE resolved_at IS NULL AND ticket IS NOT NULL;
  CREATE INDEX findings_by_change_set ON findings (host_id, change_set) WHERE change_set IS NOT NULL;
  CREATE INDEX findings_open_identity ON findings (host_id, identity) WHERE resolved_at IS NULL;
  CREATE INDEX findings_resolved ON findings (resolved_at) WHERE resolved_at IS NOT NULL;
  CREATE TABLE rule_sets (
    version integer PRIMARY KEY, body ${T} NOT NULL, created_at ${T} NOT NULL, created_by ${T}
  );
  CREATE TABLE alert_sinks (
    id ${T} PRIMARY KEY, config ${T} NOT NULL, created_at ${T} NOT NULL
  );
  CREATE TABLE host_alert_memory (
    host_id ${T} PRIMARY KEY REFERENCES hosts(id), memory ${T} NOT NULL, updated_at ${T} NOT NULL, release_at bigint
  );
  CREATE INDEX host_alert_memory_release ON host_alert_memory (release_at) WHERE release_at IS NOT NULL;
  CREATE TABLE alert_deliveries (
    -- Insertion order (SQLite's rowid): the order lists and page cursors follow.
    seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
    id ${T} PRIMARY KEY,
    sink_id ${T} NOT NULL,
    host_id ${T},
    action ${T} NOT NULL,
    dedup_key ${T} NOT NULL,
    alert ${T} NOT NULL,
    state ${T} NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at bigint NOT NULL,
    claimed_until bigint,
    created_at ${T} NOT NULL,
    basis ${T},
    reason ${T}
  );
  CREATE INDEX alert_deliveries_due ON alert_deliveries (next_attempt_at) WHERE state IN ('pending', 'claimed');
  CREATE INDEX alert_deliveries_by_dedup ON alert_deliveries (dedup_key);
  CREATE INDEX alert_deliveries_order ON alert_deliveries (created_at, seq);
  CREATE INDEX alert_deliveries_by_host ON alert_deliveries (host_id, created_at, seq);
  CREATE TABLE alert_attempts (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    delivery_id ${T} NOT NULL REFERENCES alert_deliveries(id),
    sink_id ${T} NOT NULL,
    attempt integer NOT NULL,
    at bigint NOT NULL,
    ok integer NOT NULL,
    status integer,
    error ${T},
    result ${T} NOT NULL,
    next_attempt_at bigint
  );
  CREATE INDEX alert_attempts_by_delivery ON alert_attempts (delivery_id);
  CREATE TABLE approvals (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host_id ${T} NOT NULL REFERENCES hosts(id),
    finding_id bigint NOT NULL REFERENCES findings(id),
    identity ${T} NOT NULL,
    kind ${T} NOT NULL,
    reason ${T} NOT NULL,
    ticket ${T},
    expires_at ${T},
    created_at ${T} NOT NULL,
    created_by ${T} NOT NULL,
    reopened_at ${T},
    reopened_by ${T},
    expired_at ${T}
  );
  CREATE INDEX approvals_by_finding ON approvals (finding_id) WHERE reopened_at IS NULL;
  CREATE INDEX approvals_expiring ON approvals (expires_at) WHERE reopened_at IS NULL AND expires_at IS NOT NULL;
  CREATE TABLE host_baselines (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    host_id ${T} NOT NULL REFERENCES hosts(id),
    version integer NOT NULL,
    image_name ${T},
    image_version ${T},
    accepted ${T} NOT NULL,
    created_at ${T} NOT NULL,
    created_by ${T} NOT NULL,
    state ${T} NOT NULL DEFAULT 'accepted-only',
    manifest ${T},
    parent_baseline integer,
    parent_source ${T},
    packages integer,
    files integer,
    notes ${T},
    ready_at ${T},
    UNIQUE (host_id, version)
  );
  CREATE TABLE audit_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at ${T} NOT NULL,
    actor ${T} NOT NULL,
    actor_name ${T},
    role ${T} NOT NULL,
    action ${T} NOT NULL,
    target ${T} NOT NULL,
    reason ${T},
    detail ${T} NOT NULL
  );
  CREATE INDEX audit_log_by_target ON audit_log (target, id);
  CREATE INDEX audit_log_by_action ON audit_log (action, id);
  -- Evidence: the audit log and the alert attempts are append-only.
  CREATE FUNCTION quicksand_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$;
  CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log FOR EACH ROW EXECUTE FUNCTION quicksand_append_only();
  CREATE TRIGGER alert_attempts_append_only BEFORE UPDATE ON alert_attempts FOR EACH ROW EXECUTE FUNCTION quicksand_append_only();
  CREATE TABLE change_sets (
    host_id ${T} NOT NULL REFERENCES hosts(id),
    id ${T} NOT NULL,
    tool ${T} NOT NULL,
    command ${T},
    user_name ${T},
    started_at ${T},
    ended_at ${T},
    packages integer NOT NULL,
    ticket ${T},
    first_seen ${T} NOT NULL,
    last_seen ${T} NOT NULL,
    PRIMARY KEY (host_id, id)
  );
  CREATE TABLE containers (
    host_id ${T} PRIMARY KEY REFERENCES hosts(id),
    parent_id ${T} NOT NULL REFERENCES hosts(id),
    runtime ${T} NOT NULL,
    container_id ${T} NOT NULL,
    name ${T},
    image_ref ${T},
    image_id ${T},
    state ${T} NOT NULL,
    first_seen ${T} NOT NULL,
    last_seen ${T} NOT NULL,
    last_seq bigint NOT NULL,
    gone_at ${T},
    UNIQUE (parent_id, runtime, container_id)
  );
  CREATE INDEX containers_by_image_ref ON containers (image_ref);
  CREATE INDEX containers_by_image_id ON containers (image_id);
  `,
  // Issue 14: console users, their sessions, failed logins (the lockout), API tokens of a user.
  `
  CREATE TABLE users (
    name ${T} PRIMARY KEY,
    role ${T} NOT NULL,
    password_hash ${T} NOT NULL,
    created_at ${T} NOT NULL,
    password_changed_at ${T} NOT NULL,
    disabled_at ${T},
    last_login_at ${T}
  );
  CREATE TABLE sessions (
    id ${T} PRIMARY KEY,
    hash bytea NOT NULL,
    user_name ${T} NOT NULL REFERENCES users(name),
    csrf ${T} NOT NULL,
    created_at ${T} NOT NULL,
    last_seen_at ${T} NOT NULL,
    expires_at ${T} NOT NULL,
    idle_ms bigint NOT NULL
  );
  CREATE INDEX sessions_by_user ON sessions (user_name);
  CREATE TABLE login_failures (
    key ${T} PRIMARY KEY,
    failures integer NOT NULL,
    window_start ${T} NOT NULL,
    locked_until ${T}
  );
  ALTER TABLE api_tokens ADD COLUMN user_name ${T} REFERENCES users(name);
  `,
  // Issue 13 (several nodes): which node holds which agent's socket, commands as rows (their ids
  // announced by NOTIFY on commit), leases so a job runs on one node at a time.
  `
  CREATE TABLE agent_sessions (
    agent_id ${T} PRIMARY KEY REFERENCES hosts(id),
    node_id ${T} NOT NULL,
    connected_at ${T} NOT NULL,
    seen_at ${T} NOT NULL
  );
  CREATE INDEX agent_sessions_by_node ON agent_sessions (node_id);
  CREATE TABLE agent_commands (
    id bigserial PRIMARY KEY,
    agent_id ${T} NOT NULL REFERENCES hosts(id),
    command ${T} NOT NULL,
    baseline integer,
    created_at ${T} NOT NULL,
    expires_at ${T} NOT NULL,
    delivered_at ${T},
    delivered_by ${T}
  );
  CREATE INDEX agent_commands_pending ON agent_commands (agent_id, id) WHERE delivered_at IS NULL;
  CREATE TABLE leases (
    name ${T} PRIMARY KEY,
    holder ${T} NOT NULL,
    expires_at bigint NOT NULL
  );
  `,
  // Issue 14 (the console): the history of host status changes and the fleet page's indexes
  // (see ../migrations.ts).
  `
  CREATE TABLE host_status_changes (
    id bigserial PRIMARY KEY,
    host_id ${T} NOT NULL REFERENCES hosts(id),
    from_status ${T},
    to_status ${T} NOT NULL,
    at ${T} NOT NULL,
    cause ${T} NOT NULL,
    actor ${T}
  );
  CREATE INDEX host_status_changes_by_host ON host_status_changes (host_id, id);
  CREATE INDEX host_status_changes_by_time ON host_status_changes (at);
  INSERT INTO host_status_changes (host_id, from_status, to_status, at, cause, actor)
    SELECT id, NULL, status, CASE WHEN status = 'pet' THEN coalesce(pet_since, last_report_at, enrolled_at) ELSE coalesce(last_report_at, enrolled_at) END, 'migration', NULL
    FROM hosts ORDER BY id;
  -- The page's order (hostname, id) and the host audit's range (target) have their indexes since version 1.
  CREATE INDEX hosts_fleet_by_status ON hosts (status, hostname, id) WHERE parent_id IS NULL;
  CREATE INDEX hosts_fleet_by_image ON hosts (image_name, image_version, status) WHERE parent_id IS NULL;
  -- Which of a page's hostnames other hosts (containers too) share: a probe per name, not a scan.
  CREATE INDEX hosts_by_hostname ON hosts (hostname);
  `,
  // Liveness in narrow rows. A heartbeat rewrote the host's ~2 KB row (2,177 B of WAL each, issue
  // 13's idle phase); it now updates a row of its own (HOT: no indexed column changes, room left
  // on the page by the fill factor). Readers take the later of it and hosts.last_seen, which
  // hellos and reports still write. A node's sessions are live while its one row in
  // cluster_nodes is, so a node's heartbeat is one row, not a rewrite of all its agents' rows.
  `
  CREATE TABLE host_heartbeats (
    host_id ${T} PRIMARY KEY REFERENCES hosts(id),
    seen_at ${T} NOT NULL,
    outbox_depth bigint NOT NULL
  ) WITH (fillfactor = 50);
  CREATE TABLE cluster_nodes (
    node_id ${T} PRIMARY KEY,
    seen_at ${T} NOT NULL
  ) WITH (fillfactor = 50);
  INSERT INTO cluster_nodes (node_id, seen_at) SELECT node_id, max(seen_at) FROM agent_sessions GROUP BY node_id;
  `,
  // Issue 13 (ingest): the JSON past the TOAST threshold (about 2 KB) is compressed on every
  // write: a host's alert memory (3.5 KB on the bench) with every report of its host. lz4
  // compresses it in 11 µs where pglz, the default, takes 31 µs (and reads back faster), for 8%
  // more bytes. A server built without lz4 keeps pglz.
  // A report rewrote its host's row with a new entry in each of the table's seven indexes: the
  // stale schedule's index on last_report_at changed with every report, so no update of a host
  // was HOT (7,000 of 87,500 on the bench). Without it a report changes no indexed column of its
  // host, and fill factor 70 leaves room on the page for the new version. The stale schedule
  // (once a minute, one node) reads the table instead: 2.4 ms for 5,000 hosts.
  `
  DROP INDEX hosts_by_last_report;
  ALTER TABLE hosts SET (fillfactor = 70);
  DO $$ BEGIN
    ALTER TABLE host_alert_memory ALTER COLUMN memory SET COMPRESSION lz4;
    ALTER TABLE reports ALTER COLUMN body SET COMPRESSION lz4;
    ALTER TABLE findings ALTER COLUMN detail SET COMPRESSION lz4;
  EXCEPTION WHEN feature_not_supported THEN NULL;
  END $$;
  `,
  // Issue 13 (ingest): every report counted its host's open findings again (a third of the
  // database's time at 2,100 reports/s). A report now counts again only when it may have changed
  // what counts otherwise than by new findings (see ingest.ts): findings.counted_seq is the seq
  // that last inserted the row or changed a column the count reads (severity, waived, identity);
  // hosts.recount_at is when the stored count stops holding by time alone (the first expiry of
  // an approval it relied on), '' for "count at the next report", which every host upgraded here
  // is (a constant default is no rewrite), as its stored count may predate a finding of the
  // server's own written without one.
  `
  ALTER TABLE findings ADD COLUMN counted_seq bigint;
  ALTER TABLE hosts ADD COLUMN recount_at ${T} DEFAULT '';
  ALTER TABLE hosts ALTER COLUMN recount_at DROP DEFAULT;
  `,
  // Issue 13 (ingest): no update of a re-seen finding was HOT. Its identity (the state it names:
  // a file's new hash) changes with each event report, and findings_open_identity indexed it;
  // its one reader (an alert's findings when its delivery is composed) finds a host's open
  // findings through findings_open as well, some 60 rows a host. Fill factor 80 leaves room on
  // the page for the new version (new pages only; a table rewritten later keeps it too).
  `
  DROP INDEX findings_open_identity;
  ALTER TABLE findings SET (fillfactor = 80);
  `,
];
