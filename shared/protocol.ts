// What the agent and the server say to each other over the WebSocket: one JSON object per text
// frame, discriminated by `type`. Both sides parse every frame they receive with these schemas.
import { z } from 'zod';
import { formatIssues } from './schema-errors.js';
import { reportSchema } from './report.js';
import { hostLabelsSchema } from './labels.js';
import { boundedString, depthProblem } from './bounds.js';

export const PROTOCOL_VERSION = 1;
/** The path the agent stream is served on. */
export const STREAM_PATH = '/api/v1/stream';
/** Frames above this are refused (close 1009) before they are parsed. A full report of a badly
 * drifted host (thousands of findings) stays well under it. */
export const MAX_FRAME_BYTES = 8 * 1024 * 1024;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits');
const seq = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);
const depth = z.number().int().nonnegative();
/** /etc/machine-id: 32 lowercase hex digits (machine-id(5)). */
export const machineIdSchema = boundedString(32).regex(/^[0-9a-f]{32}$/, 'expected a machine-id: 32 lowercase hex digits');
/** /proc/sys/kernel/random/boot_id: a UUID, new on every boot. */
export const bootIdSchema = boundedString(36).regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'expected a boot id (a UUID)');

export const helloFrameSchema = z.strictObject({
  type: z.literal('hello'),
  protocol: z.literal(PROTOCOL_VERSION),
  // Must be the token's agent id; the server refuses the session otherwise.
  agentId: z.string().min(1).max(100),
  host: z.strictObject({
    hostname: z.string().min(1).max(255),
    os: z.string().max(200).optional(),
    agentVersion: z.string().max(50).optional(),
    // Which machine speaks (machine-id(5)) and since which boot: the server tells a token used
    // by two machines (a copied agent.json, a cloned image) from one host that rebooted.
    machineId: machineIdSchema.optional(),
    bootId: bootIdSchema.optional(),
  }),
  image: z.strictObject({ name: z.string().min(1).max(200), version: z.string().min(1).max(200) }).nullable(),
  lastAckedSeq: z.number().int().nonnegative(),
  outboxDepth: depth,
  // What the agent declares about its host (`run --label env=prod`): replaces what it declared
  // before; absent (a one-off `scan --send`, an older agent) leaves it as it was.
  labels: hostLabelsSchema.optional(),
  // The server baseline version the agent scans against (after a re-baseline); absent: the image's.
  baseline: z.number().int().positive().optional(),
});
export type HelloFrame = z.infer<typeof helloFrameSchema>;

export const reportFrameSchema = z.strictObject({
  type: z.literal('report'),
  // Must be the token's agent id: a frame never speaks for another host.
  agentId: z.string().min(1).max(100),
  seq,
  /** sha256 of the previous report of this agent (null for its first): the server checks the chain. */
  prevHash: sha256Hex.nullable(),
  /** sha256 over prevHash and this report's JSON, computed when the report entered the outbox. */
  hash: sha256Hex,
  kind: z.enum(['full', 'event']),
  report: reportSchema,
  outboxDepth: depth.optional(),
});
export type ReportFrame = z.infer<typeof reportFrameSchema>;

export const heartbeatFrameSchema = z.strictObject({
  type: z.literal('heartbeat'),
  outboxDepth: depth,
});
export type HeartbeatFrame = z.infer<typeof heartbeatFrameSchema>;

export const agentFrameSchema = z.discriminatedUnion('type', [helloFrameSchema, reportFrameSchema, heartbeatFrameSchema]);
export type AgentFrame = z.infer<typeof agentFrameSchema>;

/**
 * `seq` is cumulative: every report of this agent up to and including `seq` is committed. The
 * server sends one per batch it committed (naming the highest seq of this agent in it), not one per
 * report, so an agent drops everything up to `seq` from its outbox. Agents before this release
 * dropped only `seq` itself: agent and server ship together.
 */
export const ackFrameSchema = z.strictObject({ type: z.literal('ack'), seq: z.number().int().nonnegative() });
export type AckFrame = z.infer<typeof ackFrameSchema>;

export const WIRE_ERROR_CODES = [
  'FRAME_MALFORMED', // not JSON
  'FRAME_INVALID', // JSON, but the schema does not pass
  'FRAME_UNKNOWN', // a type this side does not speak
  'FRAME_TOO_LARGE',
  'HELLO_REQUIRED', // a report or heartbeat before hello
  'HOST_MISMATCH', // a frame that names another host than the token's
  'REPORT_OUT_OF_ORDER',
  'SERVER_BUSY',
  'RATE_LIMITED', // heartbeats or replays far more often than an agent sends them: a strike
  'INTERNAL',
] as const;
export type WireErrorCode = (typeof WIRE_ERROR_CODES)[number];

export const errorFrameSchema = z.strictObject({
  type: z.literal('error'),
  code: z.enum(WIRE_ERROR_CODES),
  message: z.string().max(4000),
  seq: z.number().int().nonnegative().optional(),
});
export type ErrorFrame = z.infer<typeof errorFrameSchema>;

/**
 * `scan-now`: a full scan now. `upload-observation`: the host was re-baselined; upload what it
 * holds now for version `baseline`. `fetch-baseline`: version `baseline` is ready; fetch it and
 * scan against it from now on.
 */
export const commandFrameSchema = z.strictObject({
  type: z.literal('command'),
  command: z.enum(['scan-now', 'upload-observation', 'fetch-baseline']),
  id: z.string().max(100).optional(),
  baseline: z.number().int().positive().optional(),
});
export type CommandFrame = z.infer<typeof commandFrameSchema>;

export const serverFrameSchema = z.discriminatedUnion('type', [ackFrameSchema, errorFrameSchema, commandFrameSchema]);
export type ServerFrame = z.infer<typeof serverFrameSchema>;

export type FrameParse<T> = { ok: true; frame: T } | { ok: false; code: 'FRAME_MALFORMED' | 'FRAME_INVALID' | 'FRAME_UNKNOWN'; message: string };

/** Parses one received text frame. Never throws: the caller decides what a bad frame costs. */
export function parseFrame<T extends { type: string }>(
  text: string,
  schema: z.ZodType<T>,
  types: readonly string[],
): FrameParse<T> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return { ok: false, code: 'FRAME_MALFORMED', message: 'frame is not valid JSON' };
  }
  const type = typeof value === 'object' && value !== null ? (value as { type?: unknown }).type : undefined;
  // Before the schema: it recurses with the data, and a few thousand levels overflow the stack.
  const deep = depthProblem(value);
  if (deep !== null) return { ok: false, code: 'FRAME_INVALID', message: `frame ${deep}` };
  if (typeof type !== 'string' || !types.includes(type)) {
    return { ok: false, code: 'FRAME_UNKNOWN', message: `type: unknown frame type ${JSON.stringify(type ?? null).slice(0, 40)}; expected one of ${types.join(', ')}` };
  }
  const result = schema.safeParse(value);
  if (!result.success) return { ok: false, code: 'FRAME_INVALID', message: `${type} frame is invalid:\n${formatIssues(result.error)}` };
  return { ok: true, frame: result.data };
}

export const AGENT_FRAME_TYPES = ['hello', 'report', 'heartbeat'] as const;
export const SERVER_FRAME_TYPES = ['ack', 'error', 'command'] as const;

export function parseAgentFrame(text: string): FrameParse<AgentFrame> {
  return parseFrame(text, agentFrameSchema, AGENT_FRAME_TYPES);
}

export function parseServerFrame(text: string): FrameParse<ServerFrame> {
  return parseFrame(text, serverFrameSchema, SERVER_FRAME_TYPES);
}

// ---- HTTP bodies of the enrolment exchange ----

export const enrollRequestSchema = z.strictObject({
  secret: z.string().min(1).max(200),
  hostname: z.string().min(1).max(255),
  // The host's own machine-id: the server knows which machine this identity belongs to.
  machineId: machineIdSchema.optional(),
});
export type EnrollRequest = z.infer<typeof enrollRequestSchema>;

export const enrollResponseSchema = z.strictObject({
  agentId: z.string().min(1).max(100),
  token: z.string().min(1).max(200),
});
export type EnrollResponse = z.infer<typeof enrollResponseSchema>;

/**
 * What an image carries instead of an identity (enroll.json, written by `install.sh --root`):
 * where to enrol and with which secret, on the first boot of each machine made from it.
 */
const serverUrlSchema = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' }).max(2000);
/** Several nodes of one deployment without a balancer in front: the agent tries them in random order. */
export const MAX_SERVER_URLS = 16;
const serverUrlsSchema = z.array(serverUrlSchema).min(1).max(MAX_SERVER_URLS);

export const enrollConfigSchema = z.strictObject({
  server: serverUrlSchema,
  /** Every node the agent may use, `server` among them; absent: `server` alone. */
  servers: serverUrlsSchema.optional(),
  secret: z.string().min(1).max(200),
});
export type EnrollConfig = z.infer<typeof enrollConfigSchema>;

/** The agent's own configuration file (agent.json): where to send, and as whom. */
export const agentConfigSchema = z.strictObject({
  server: serverUrlSchema,
  /** Every node the agent may use, `server` among them; absent: `server` alone. */
  servers: serverUrlsSchema.optional(),
  agentId: z.string().min(1),
  token: z.string().min(1),
});
export type AgentConfig = z.infer<typeof agentConfigSchema>;
