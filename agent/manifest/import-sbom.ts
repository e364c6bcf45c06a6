import { QuicksandError } from '../../shared/errors.js';
import type { Ecosystem } from '../../shared/findings.js';
import { MANIFEST_SCHEMA } from '../../shared/manifest-format.js';
import type { Manifest, PackageRecord } from '../../shared/manifest.js';
import { defaultPolicy } from '../../shared/policy.js';
import { normalizePythonName } from '../collect/read.js';

export interface Purl {
  type: string;
  namespace?: string;
  name: string;
  version?: string;
  qualifiers: Map<string, string>;
}

const decode = (s: string): string => {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
};

/** Parses a package URL (`pkg:type/namespace/name@version?qualifiers#subpath`); null if it is not one. */
export function parsePurl(text: string): Purl | null {
  if (!/^pkg:/i.test(text)) return null;
  let rest = text.slice(4).replace(/^\/+/, '');
  const hash = rest.indexOf('#');
  if (hash !== -1) rest = rest.slice(0, hash);
  const qualifiers = new Map<string, string>();
  const q = rest.indexOf('?');
  if (q !== -1) {
    for (const pair of rest.slice(q + 1).split('&')) {
      const eq = pair.indexOf('=');
      if (eq > 0) qualifiers.set(pair.slice(0, eq).toLowerCase(), decode(pair.slice(eq + 1)));
    }
    rest = rest.slice(0, q);
  }
  const slash = rest.lastIndexOf('/');
  const at = rest.indexOf('@', slash + 1);
  const version = at === -1 ? undefined : decode(rest.slice(at + 1));
  const path = (at === -1 ? rest : rest.slice(0, at)).split('/').filter(Boolean);
  if (path.length < 2) return null;
  const type = path[0]!.toLowerCase();
  const name = decode(path.at(-1)!);
  const namespace = path.length > 2 ? path.slice(1, -1).map(decode).join('/') : undefined;
  if (name === '') return null;
  return { type, name, qualifiers, ...(namespace ? { namespace } : {}), ...(version ? { version } : {}) };
}

const ECOSYSTEM_OF: ReadonlyMap<string, Ecosystem> = new Map(Object.entries({ deb: 'dpkg', rpm: 'rpm', apk: 'apk', pypi: 'pip', gem: 'gem', cpan: 'cpan', npm: 'npm' } as const));

/** The package record a purl names, in the agent's own naming (pip PEP 503, npm `@scope/name`, rpm `epoch:version`). */
export function packageFromPurl(purl: Purl, fallbackVersion: string | undefined): PackageRecord | null {
  const ecosystem = ECOSYSTEM_OF.get(purl.type);
  if (!ecosystem) return null;
  let name = purl.name;
  if (ecosystem === 'npm' && purl.namespace) name = `${purl.namespace.startsWith('@') ? '' : '@'}${purl.namespace}/${name}`;
  if (ecosystem === 'pip') name = normalizePythonName(name);
  let version = purl.version ?? fallbackVersion;
  if (!version) return null;
  const epoch = purl.qualifiers.get('epoch');
  if ((ecosystem === 'rpm' || ecosystem === 'dpkg') && epoch && epoch !== '0' && !version.includes(':')) version = `${epoch}:${version}`;
  const arch = purl.qualifiers.get('arch');
  return { ecosystem, name, version, ...(arch ? { arch } : {}) };
}

interface Parsed {
  packages: PackageRecord[];
  image: { name?: string; version?: string };
  skipped: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function fail(source: string, where: string, message: string): never {
  throw new QuicksandError('MANIFEST_INVALID', `${source}: ${where}: ${message}`);
}

function optionalString(source: string, where: string, v: unknown): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') fail(source, where, `expected a string, got ${v === null ? 'null' : typeof v}`);
  return v;
}

/** CycloneDX JSON: `components[]` (nested `components` too) with `name`, `version`, `purl`. */
function parseCycloneDx(doc: Record<string, unknown>, source: string): Parsed {
  const packages: PackageRecord[] = [];
  let skipped = 0;
  const walk = (list: unknown, where: string): void => {
    if (list === undefined) return;
    if (!Array.isArray(list)) fail(source, where, 'expected an array');
    list.forEach((c, i) => {
      const at = `${where}[${i}]`;
      if (!isObject(c)) fail(source, at, 'expected an object');
      optionalString(source, `${at}.name`, c.name);
      const version = optionalString(source, `${at}.version`, c.version);
      const purlText = optionalString(source, `${at}.purl`, c.purl);
      if (purlText !== undefined) {
        const purl = parsePurl(purlText);
        if (!purl) fail(source, `${at}.purl`, `${JSON.stringify(purlText.slice(0, 80))} is not a package URL (pkg:type/name@version)`);
        const record = packageFromPurl(purl, version);
        if (record) packages.push(record);
        else skipped++;
      } else skipped++;
      walk(c.components, `${at}.components`);
    });
  };
  walk(doc.components, 'components');
  const meta = isObject(doc.metadata) && isObject(doc.metadata.component) ? doc.metadata.component : {};
  return { packages, skipped, image: { ...(typeof meta.name === 'string' ? { name: meta.name } : {}), ...(typeof meta.version === 'string' ? { version: meta.version } : {}) } };
}

/** SPDX JSON: `packages[]` with `name`, `versionInfo`, `externalRefs[]` of type `purl`. */
function parseSpdx(doc: Record<string, unknown>, source: string): Parsed {
  const packages: PackageRecord[] = [];
  let skipped = 0;
  const list = doc.packages ?? [];
  if (!Array.isArray(list)) fail(source, 'packages', 'expected an array');
  list.forEach((p, i) => {
    const at = `packages[${i}]`;
    if (!isObject(p)) fail(source, at, 'expected an object');
    const version = optionalString(source, `${at}.versionInfo`, p.versionInfo);
    const refs = p.externalRefs ?? [];
    if (!Array.isArray(refs)) fail(source, `${at}.externalRefs`, 'expected an array');
    let found = false;
    refs.forEach((r, j) => {
      const rat = `${at}.externalRefs[${j}]`;
      if (!isObject(r)) fail(source, rat, 'expected an object');
      if (r.referenceType !== 'purl' || found) return;
      const locator = optionalString(source, `${rat}.referenceLocator`, r.referenceLocator);
      const purl = locator === undefined ? null : parsePurl(locator);
      if (!purl) fail(source, `${rat}.referenceLocator`, `${JSON.stringify(String(locator).slice(0, 80))} is not a package URL`);
      const record = packageFromPurl(purl, version);
      if (record) {
        packages.push(record);
        found = true;
      }
    });
    if (!found) skipped++;
  });
  return { packages, skipped, image: typeof doc.name === 'string' ? { name: doc.name } : {} };
}

/** Parses an SBOM document (already JSON-parsed, untrusted): CycloneDX or SPDX JSON. */
export function parseSbom(value: unknown, source: string): Parsed & { format: 'cyclonedx' | 'spdx' } {
  if (!isObject(value)) fail(source, '(document)', 'expected a JSON object');
  if (value.bomFormat === 'CycloneDX') return { ...parseCycloneDx(value, source), format: 'cyclonedx' };
  if (typeof value.spdxVersion === 'string') return { ...parseSpdx(value, source), format: 'spdx' };
  return fail(source, '(document)', 'neither CycloneDX (bomFormat: "CycloneDX") nor SPDX (spdxVersion) JSON');
}

/** A package-only manifest from an SBOM: package verification stands in for file records. */
export function manifestFromSbom(packages: PackageRecord[], image: { name: string; version: string }, createdAt: Date): Manifest {
  // One record per package: SBOM tools sometimes list a package once per file that names it.
  const unique = new Map(packages.map((p) => [`${p.ecosystem}:${p.name}:${p.arch ?? ''}`, p]));
  return {
    schema: MANIFEST_SCHEMA,
    image: { ...image, createdAt: createdAt.toISOString(), source: 'sbom' },
    policy: defaultPolicy(),
    packages: [...unique.values()].sort((a, b) => a.ecosystem.localeCompare(b.ecosystem) || a.name.localeCompare(b.name)),
    files: [],
  };
}
