// Stable error codes: scripts, the API and tests match on `code`, never on the message text.
export const ERROR_CODES = [
  'USAGE', // bad command line
  'ROOT_NOT_FOUND', // --root does not exist or is not a directory
  'MANIFEST_NOT_FOUND',
  'MANIFEST_UNREADABLE', // not JSON, truncated gzip, ...
  'MANIFEST_INVALID', // JSON, but the schema does not pass
  'MANIFEST_SCHEMA_VERSION', // a manifest of another schema version
  'REPORT_INVALID',
  'RULES_INVALID', // a rule set (API upload) that does not pass its schema
  'ALERT_SINK_INVALID', // an alert sink configuration that does not pass its schema
  'PACKAGE_DB_INVALID', // a package database we could not parse
  'STATE_DIR_UNUSABLE',
  'SCAN_FAILED', // the daemon's full scan (a child process) failed or printed no report
  'OUTPUT_UNWRITABLE',
  'DB_UNUSABLE', // the server's database cannot be opened or is of a newer version
  'AGENT_NOT_ENROLLED', // no agent.json yet: run quicksand-agent enroll
  'MACHINE_ID_MISSING', // first-boot enrolment on a machine without its own /etc/machine-id yet
  'CONFIG_INVALID', // agent.json does not pass its schema
  'ENROLL_REFUSED', // the server refused the enrolment secret
  'SERVER_UNREACHABLE',
  'DELIVERY_TIMEOUT', // scan --send gave up waiting for the ack; the report stays in the outbox
  'AGENT_TOKEN_INVALID',
  'AGENT_TOKEN_REVOKED',
  'API_TOKEN_INVALID',
  'FORBIDDEN', // a valid API token whose role may not do this
  'NOT_FOUND',
  'CONFLICT', // the target is not in a state the request can change (nothing to reopen)
  'QUERY_INVALID', // a query string or path parameter that does not pass its schema
  'BODY_INVALID', // a request body that is not JSON or does not pass its schema
  'BODY_TOO_LARGE', // a request body over its route's limit (413)
  'SERVER_BUSY', // too many requests of this kind now: retry after Retry-After (503)
  'NOT_READY', // /healthz: the ingest worker or the database cannot take reports (503)
  'RATE_LIMITED', // too many requests from one address: retry after Retry-After (429)
  'INTERNAL',
] as const;
export type ErrorCode = (typeof ERROR_CODES)[number];

/** An error meant for a person: `message` says what was wrong and, where it helps, what to do. */
export class QuicksandError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'QuicksandError';
    this.code = code;
  }
}

export function isQuicksandError(err: unknown): err is QuicksandError {
  return err instanceof QuicksandError;
}
