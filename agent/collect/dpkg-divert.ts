import type { Root } from '../root.js';
import type { OwnedFile } from './types.js';

/** One `dpkg-divert`: the package's file at `from` was moved to `to`; `by` is a package, or `local`. */
export interface Diversion {
  from: string;
  to: string;
  by: string;
}

/**
 * Parses `var/lib/dpkg/diversions`: three lines per diversion (the diverted path, where the
 * package's file went, the diverting package or `:` for a local one made by hand). Pure.
 */
export function parseDiversions(text: string): Diversion[] {
  const lines = text.split('\n');
  const out: Diversion[] = [];
  for (let i = 0; i + 2 < lines.length; i += 3) {
    const [from, to, by] = [lines[i]!, lines[i + 1]!, lines[i + 2]!];
    if (!from.startsWith('/') || !to.startsWith('/') || by === '') break; // damaged: keep what came before
    out.push({ from, to, by: by === ':' ? 'local' : by });
  }
  return out;
}

/**
 * Applies local diversions to what dpkg says it owns: the package's file now lives at `to`, so
 * its digest is checked there; what sits at `from` is not the package's and carries the
 * diversion, so a replaced file is named for what it is. A package's own diversions (one package
 * taking another's path) are ordinary packaging and left as dpkg lists them. Changes `owned`.
 */
export function applyDiversions(owned: Map<string, OwnedFile>, diversions: readonly Diversion[], root: Root): void {
  for (const d of diversions) {
    if (d.by !== 'local') continue;
    const from = root.canonical(d.from);
    const original = owned.get(from);
    if (!original) continue;
    owned.set(root.canonical(d.to), { ...original, divertedFrom: d.from });
    owned.set(from, { owner: original.owner, conffile: false, diversion: { to: d.to, by: d.by } });
  }
}
