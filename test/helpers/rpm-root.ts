// Real rpm packages and a real sqlite rpmdb for the tests, built with Debian's rpmbuild and rpm.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export interface RpmSpec {
  name: string;
  version: string;
  release?: string;
  epoch?: number;
  /** Path inside the root → content; a path under /etc is marked %config. */
  files: Record<string, string>;
  /** Symlink path inside the root → its target. */
  links?: Record<string, string>;
}

/** Builds one noarch rpm with rpmbuild into `outDir` and returns its path. */
export function buildRpm(spec: RpmSpec, outDir: string): string {
  const top = mkdtempSync(path.join(tmpdir(), 'qs-rpmbuild-'));
  try {
    const release = spec.release ?? '1';
    const install = Object.entries(spec.files)
      .map(([p, content], i) => `mkdir -p %{buildroot}${path.posix.dirname(p)}\ncat > %{buildroot}${p} <<'QS_EOF_${i}'\n${content}\nQS_EOF_${i}\nchmod 0755 %{buildroot}${p}`)
      .join('\n');
    const links = Object.entries(spec.links ?? {})
      .map(([p, target]) => `mkdir -p %{buildroot}${path.posix.dirname(p)}\nln -s ${target} %{buildroot}${p}`)
      .join('\n');
    const files = [...Object.keys(spec.files), ...Object.keys(spec.links ?? {})]
      .map((p) => (p.startsWith('/etc/') ? `%config(noreplace) ${p}` : p))
      .join('\n');
    const text = [
      `Name: ${spec.name}`,
      `Version: ${spec.version}`,
      `Release: ${release}`,
      ...(spec.epoch !== undefined ? [`Epoch: ${spec.epoch}`] : []),
      'Summary: quicksand test package',
      'License: MIT',
      'BuildArch: noarch',
      '%description',
      'quicksand test package',
      '%install',
      install,
      links,
      '%files',
      files,
      '',
    ].join('\n');
    const specFile = path.join(top, `${spec.name}.spec`);
    writeFileSync(specFile, text);
    execFileSync(
      'rpmbuild',
      ['-bb', '--define', `_topdir ${top}`, '--define', '_binary_payload w9.gzdio', '--define', '__os_install_post %{nil}', '--define', 'debug_package %{nil}', '--define', '_build_id_links none', specFile],
      { stdio: 'pipe' },
    );
    mkdirSync(outDir, { recursive: true });
    const rpmDir = path.join(top, 'RPMS', 'noarch');
    const built = readdirSync(rpmDir)[0]!;
    const out = path.join(outDir, built);
    execFileSync('cp', [path.join(rpmDir, built), out]);
    return out;
  } finally {
    rmSync(top, { recursive: true, force: true });
  }
}

/** Runs rpm against the test root with the database where RHEL/SUSE keep it. */
export function rpmInRoot(root: string, args: string[]): string {
  return execFileSync('rpm', ['--root', root, '--dbpath', '/var/lib/rpm', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function initRpmRoot(root: string): void {
  mkdirSync(root, { recursive: true });
  rpmInRoot(root, ['--initdb']);
}
