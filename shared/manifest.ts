import { z } from 'zod';
import { ECOSYSTEMS, SEVERITIES } from './findings.js';
import { ATTACK_TECHNIQUES } from './attack.js';
import type { TechniqueId } from './attack.js';
import { QuicksandError } from './errors.js';
import { formatIssues } from './schema-errors.js';
import { LIMITS, boundedArray, boundedString, depthProblem } from './bounds.js';
import { DEFAULT_IGNORED, DEFAULT_MUTABLE, DEFAULT_TRACKED } from './policy.js';
import { MAX_CONFIG_TEXT_CHARS, MAX_CONFIG_TEXT_TOTAL, TEXT_OMISSIONS } from './config-text.js';

import { FILE_TYPES, MANIFEST_SCHEMA, MAX_MANIFEST_FILES, MAX_MANIFEST_PACKAGES } from './manifest-format.js';

export { FILE_TYPES, MANIFEST_SCHEMA, MAX_MANIFEST_FILES, MAX_MANIFEST_PACKAGES, pathKey, type FileType } from './manifest-format.js';

const absolutePath = boundedString(LIMITS.path).regex(/^\//, 'expected an absolute path');

export const packageRefSchema = z.strictObject({ ecosystem: z.enum(ECOSYSTEMS), name: boundedString().min(1) });
export type PackageRef = z.infer<typeof packageRefSchema>;

const capabilityName = boundedString(44).regex(/^cap_[a-z0-9_]{1,40}$/, 'expected a capability name like "cap_net_raw"');

/**
 * A file's `security.capability`, decoded: the permitted and inheritable sets by name and whether
 * they are effective at exec (one flag for all in file capabilities); `rootid` of a namespaced one.
 */
export const fileCapabilitySchema = z.strictObject({
  effective: z.boolean(),
  permitted: boundedArray(capabilityName, LIMITS.keys),
  inheritable: boundedArray(capabilityName, LIMITS.keys),
  rootid: z.number().int().nonnegative().max(0xffffffff).optional(),
});
export type FileCapability = z.infer<typeof fileCapabilitySchema>;

/**
 * One path as the image (or the host) holds it. `mode` is the permission part of st_mode,
 * setuid/setgid/sticky included, as 4 octal digits. `rawPath` (base64) is present only when the
 * name is not valid UTF-8: `path` is then a readable stand-in and `rawPath` the exact bytes.
 */
export const fileRecordSchema = z.strictObject({
  path: absolutePath,
  rawPath: z.base64().max(LIMITS.path * 2).optional(),
  type: z.enum(FILE_TYPES),
  mode: z.string().regex(/^[0-7]{4}$/, 'expected an octal mode like "0755"'),
  uid: z.number().int().nonnegative(),
  gid: z.number().int().nonnegative(),
  size: z.number().int().nonnegative().optional(),
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits').optional(),
  target: boundedString(LIMITS.path).optional(),
  // Security xattrs of a regular file, where present: capabilities count like setuid; the
  // SELinux label and IMA value (hex) are recorded and shown, and count only as info.
  capability: fileCapabilitySchema.optional(),
  selinux: boundedString(LIMITS.path).min(1).optional(),
  ima: boundedString(LIMITS.path).regex(/^[0-9a-f]{2,4096}$/, 'expected the IMA value as lowercase hex').optional(),
  // The package that installed the path, so a removed package's files nest under its finding.
  owner: packageRefSchema.optional(),
  // A small text file under the policy's config paths: its text, secrets masked (shared/config-text.ts);
  // or why it has none. Absent both: not a config path, or a manifest older than config text.
  text: boundedString(MAX_CONFIG_TEXT_CHARS).optional(),
  noText: z.enum(TEXT_OMISSIONS).optional(),
});
export type FileRecord = z.infer<typeof fileRecordSchema>;

export const packageRecordSchema = z.strictObject({
  ecosystem: z.enum(ECOSYSTEMS),
  name: boundedString().min(1),
  version: boundedString().min(1),
  arch: boundedString(100).optional(),
});
export type PackageRecord = z.infer<typeof packageRecordSchema>;

export const sensitiveRuleSchema = z.strictObject({
  path: boundedString(LIMITS.path).regex(/^\//, 'expected an absolute path or glob'),
  technique: z.enum(Object.keys(ATTACK_TECHNIQUES) as [TechniqueId, ...TechniqueId[]]),
  severity: z.enum(SEVERITIES),
  added: z.boolean().optional(),
});

export const policySchema = z.strictObject({
  tracked: boundedArray(absolutePath, LIMITS.notes).default(() => [...DEFAULT_TRACKED]),
  ignored: boundedArray(boundedString(LIMITS.path), LIMITS.notes).default(() => [...DEFAULT_IGNORED]),
  mutable: boundedArray(boundedString(LIMITS.path), LIMITS.notes).default(() => [...DEFAULT_MUTABLE]),
  // Absent: DEFAULT_SENSITIVE (shared/policy.ts). Present: these rules instead.
  sensitive: boundedArray(sensitiveRuleSchema, 1000).optional(),
  // Which files the manifest carries as text, and the caps; absent fields: DEFAULT_CONFIG_TEXT.
  configText: z
    .strictObject({
      paths: boundedArray(absolutePath, 1000),
      maxFileBytes: z.number().int().nonnegative().max(MAX_CONFIG_TEXT_CHARS, `at most ${MAX_CONFIG_TEXT_CHARS} bytes`),
      maxTotalBytes: z.number().int().nonnegative().max(MAX_CONFIG_TEXT_TOTAL, `at most ${MAX_CONFIG_TEXT_TOTAL} bytes`),
      secret: boundedArray(boundedString(LIMITS.path).regex(/^\//, 'expected an absolute path or glob'), 1000),
    })
    .partial()
    .optional(),
});

export const manifestSchema = z.strictObject({
  schema: z.literal(MANIFEST_SCHEMA),
  image: z.strictObject({
    name: boundedString().min(1),
    version: boundedString().min(1),
    createdAt: z.iso.datetime(),
    source: z.enum(['root', 'kiwi', 'sbom']),
  }),
  policy: policySchema.default(() => ({
    tracked: [...DEFAULT_TRACKED],
    ignored: [...DEFAULT_IGNORED],
    mutable: [...DEFAULT_MUTABLE],
  })),
  packages: boundedArray(packageRecordSchema, MAX_MANIFEST_PACKAGES),
  // A package-only manifest (KIWI, SBOM) has no file records: package verification stands in.
  files: boundedArray(fileRecordSchema, MAX_MANIFEST_FILES).default(() => []),
});
export type Manifest = z.infer<typeof manifestSchema>;

/**
 * Validates an untrusted, already JSON-parsed manifest. `source` names the file in messages.
 * A document of another schema version gets its own error code so tooling can tell it apart.
 */
export function parseManifest(value: unknown, source: string): Manifest {
  // First: the schema (and the messages below) recurse with the data.
  const deep = depthProblem(value);
  if (deep !== null) throw new QuicksandError('MANIFEST_INVALID', `${source} is not a valid ${MANIFEST_SCHEMA} manifest: it ${deep}`);
  if (typeof value === 'object' && value !== null && 'schema' in value) {
    const schema = (value as { schema: unknown }).schema;
    if (schema !== MANIFEST_SCHEMA) {
      throw new QuicksandError(
        'MANIFEST_SCHEMA_VERSION',
        `${source}: schema is ${typeof schema === 'string' ? JSON.stringify(schema.slice(0, 100)) : typeof schema}, this agent reads "${MANIFEST_SCHEMA}". ` +
          'Rebuild the manifest with this version of quicksand-agent manifest.',
      );
    }
  }
  const result = manifestSchema.safeParse(value);
  if (!result.success) {
    throw new QuicksandError('MANIFEST_INVALID', `${source} is not a valid ${MANIFEST_SCHEMA} manifest:\n${formatIssues(result.error)}`);
  }
  return result.data;
}
