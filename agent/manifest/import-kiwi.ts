import { QuicksandError } from '../../shared/errors.js';
import { MANIFEST_SCHEMA } from '../../shared/manifest-format.js';
import type { Manifest, PackageRecord } from '../../shared/manifest.js';
import { defaultPolicy } from '../../shared/policy.js';

// KIWI writes "(none)" (rpm's query format) or "None" (its deb code path) for an empty field.
const isNone = (v: string | undefined): boolean => v === undefined || v === '' || v === '(none)' || v === 'None';

/**
 * Parses a KIWI `.packages` file: sorted lines `name|epoch|version|release|arch|disturl|license`.
 * deb images fill epoch and release with `None` (the version already carries both); rpm images
 * have a release and `(none)` for no epoch. `source` names the file in errors.
 */
export function parseKiwiPackages(text: string, source: string): PackageRecord[] {
  const out: PackageRecord[] = [];
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    const f = line.split('|');
    const where = `${source}:${i + 1}`;
    if (f.length < 5) throw new QuicksandError('MANIFEST_INVALID', `${where}: expected name|epoch|version|release|arch|disturl|license, got ${f.length} field${f.length === 1 ? '' : 's'}`);
    const [name, epoch, version, release, arch] = f as [string, string, string, string, string];
    if (!/^[A-Za-z0-9][\w.+:~-]*$/.test(name)) throw new QuicksandError('MANIFEST_INVALID', `${where}: package name ${JSON.stringify(name)} is not a package name`);
    if (isNone(version)) throw new QuicksandError('MANIFEST_INVALID', `${where}: package ${name} has no version`);
    if (!isNone(epoch) && !/^\d+$/.test(epoch)) throw new QuicksandError('MANIFEST_INVALID', `${where}: epoch ${JSON.stringify(epoch)} of ${name} is not a number`);
    const deb = release === 'None' && (epoch === 'None' || epoch === '');
    const record: PackageRecord = deb
      ? { ecosystem: 'dpkg', name, version }
      : { ecosystem: 'rpm', name, version: `${isNone(epoch) ? '' : `${epoch}:`}${version}${isNone(release) ? '' : `-${release}`}` };
    if (!isNone(arch)) record.arch = arch;
    out.push(record);
  });
  if (out.length === 0) throw new QuicksandError('MANIFEST_INVALID', `${source}: no packages listed`);
  return out;
}

/**
 * Parses a KIWI `.verified` file: the `rpm -Va` (or `dpkg -V --verify-format rpm`) output of
 * the image before first boot, `S.5....T.  c /etc/foo` or `missing   /usr/bin/x`. Returns the
 * paths: they already differed from their package when the image was made.
 */
export function parseKiwiVerified(text: string, source: string): string[] {
  const out: string[] = [];
  let inDeps = false;
  text.split('\n').forEach((raw, i) => {
    const line = raw.replace(/\r$/, '');
    if (line.trim() === '') return;
    // rpm -Va also prints dependency problems, with the details indented below.
    if (line.startsWith('Unsatisfied dependencies for ')) {
      inDeps = true;
      return;
    }
    if (inDeps && /^\s/.test(line)) return;
    inDeps = false;
    const m = /^(missing|[SM5DLUGTP.?]{8,9})\s+(?:[cdglra]\s+)?(\/.*)$/.exec(line);
    if (!m) throw new QuicksandError('MANIFEST_INVALID', `${source}:${i + 1}: expected rpm -V output like "S.5....T.  c /etc/file", got ${JSON.stringify(line.slice(0, 80))}`);
    out.push(m[2]!);
  });
  return out;
}

const ARCHES = 'x86_64|aarch64|i586|i686|ppc64le|ppc64|s390x|armv7l|armv6l|riscv64|amd64|arm64|noarch';

/** `<name>.<arch>-<version>.packages` → image name and version, as KIWI names its results. */
export function kiwiImageIdentity(fileName: string): { name: string; version: string } | null {
  const m = new RegExp(`^(.+)\\.(?:${ARCHES})-(.+)\\.packages$`).exec(fileName);
  return m ? { name: m[1]!, version: m[2]! } : null;
}

/**
 * A package-only manifest from KIWI's results. What `.verified` lists was already different
 * before first boot: it joins the policy's mutable paths, so it is recorded but never alerted.
 */
export function manifestFromKiwi(packages: PackageRecord[], verified: string[], image: { name: string; version: string }, createdAt: Date): Manifest {
  const policy = defaultPolicy();
  policy.mutable.push(...verified.filter((p) => !policy.mutable.includes(p)));
  return {
    schema: MANIFEST_SCHEMA,
    image: { ...image, createdAt: createdAt.toISOString(), source: 'kiwi' },
    policy,
    packages: [...packages].sort((a, b) => a.ecosystem.localeCompare(b.ecosystem) || a.name.localeCompare(b.name)),
    files: [],
  };
}
