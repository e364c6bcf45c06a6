import type { z } from 'zod';

/** `findings[3].path` from zod's issue path. */
export function formatIssuePath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out === '' ? '(document)' : out;
}

/** One line per issue, at most `limit` lines: `files[12].mode: expected octal mode like "0755"`. */
export function formatIssues(error: z.ZodError, limit = 5): string {
  const lines = error.issues.slice(0, limit).map((i) => `${formatIssuePath(i.path)}: ${i.message}`);
  const more = error.issues.length - limit;
  if (more > 0) lines.push(`... and ${more} more`);
  return lines.join('\n');
}
