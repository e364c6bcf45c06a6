// The bounds of input from outside as plain numbers, without zod: the schemas (shared/bounds.ts)
// and the hand checks on hot paths (agent/manifest/stream.ts) hold the same ones. Pure.

/** The lengths and counts the schemas allow; generous for real data, finite for an attacker. */
export const LIMITS = {
  /** Names: hostnames, package names, image names, ids. */
  name: 1024,
  /** A path (Linux PATH_MAX) and a symlink target. */
  path: 4096,
  /** Free text: reasons, messages, commands. */
  text: 16 * 1024,
  /** Findings of one report, files nested under one package finding, paths in an event scope. */
  items: 1_000_000,
  /** Warnings and change sets of one report. */
  notes: 100_000,
  /** Keys of one attribute map (mode, uid, ...). */
  keys: 64,
  /** Nesting of any JSON value received: a report nests three levels, a manifest four. */
  depth: 32,
  /** Bytes of one line of a manifest file: its first line holds every package of the image. */
  manifestLine: 64 * 1024 * 1024,
} as const;
