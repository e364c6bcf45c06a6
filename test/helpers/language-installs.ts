// Real installs by each language's own package manager into a Debian chroot: a wheel built and
// installed by pip, a gem built and installed by gem, a module built and installed by
// ExtUtils::MakeMaker, a global npm package installed by npm. Everything is built locally.
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runInChroot } from './debian-root.js';

function writeTree(base: string, files: Record<string, string>): void {
  for (const [rel, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(base, rel)), { recursive: true });
    writeFileSync(path.join(base, rel), content, { mode: rel.includes('bin/') ? 0o755 : 0o644 });
  }
}

export const PIP_DEMO = { name: 'Qs_Wheel.Demo', normalized: 'qs-wheel-demo', version: '1.0.2', module: 'qs_wheel_demo' };

/**
 * Builds a wheel with `pip wheel` and installs it with `pip install --no-index`: into /usr/local,
 * or into a virtualenv made with `python3 -m venv` at `venv` (inside the root).
 */
export function pipInstallDemo(root: string, opts: { venv?: string } = {}): void {
  writeTree(path.join(root, 'root/qs-wheel-src'), {
    'pyproject.toml': `[build-system]\nrequires = ["setuptools"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "${PIP_DEMO.name}"\nversion = "${PIP_DEMO.version}"\n\n[tool.setuptools]\npackages = ["${PIP_DEMO.module}"]\n`,
    [`${PIP_DEMO.module}/__init__.py`]: 'VALUE = 42\n',
  });
  runInChroot(root, ['python3', '-m', 'pip', 'wheel', '--no-index', '--no-build-isolation', '--no-deps', '-w', '/root/wheels', '/root/qs-wheel-src']);
  const wheel = readdirSync(path.join(root, 'root/wheels')).find((f) => f.endsWith('.whl'))!;
  if (opts.venv) {
    // --without-pip: Debian's venv needs python3-venv for its own pip; the system pip serves.
    runInChroot(root, ['python3', '-m', 'venv', '--without-pip', opts.venv]);
    runInChroot(root, ['python3', '-m', 'pip', '--python', `${opts.venv}/bin/python`, 'install', '--no-index', `/root/wheels/${wheel}`]);
    return;
  }
  // Debian marks its Python externally managed (PEP 668): a local admin overrides it like this.
  runInChroot(root, ['python3', '-m', 'pip', 'install', '--no-index', '--break-system-packages', `/root/wheels/${wheel}`]);
}

export const GEM_DEMO = { name: 'qsgem', version: '0.3.0' };

/** `gem build` + `gem install --local`: installs into /var/lib/gems and a wrapper into /usr/local/bin. */
export function gemInstallDemo(root: string): void {
  writeTree(path.join(root, 'root/qsgem'), {
    'qsgem.gemspec': `Gem::Specification.new do |s|\n  s.name = "${GEM_DEMO.name}"\n  s.version = "${GEM_DEMO.version}"\n  s.summary = "quicksand test gem"\n  s.authors = ["tests"]\n  s.license = "MIT"\n  s.files = ["lib/qsgem.rb", "bin/qsgem"]\n  s.executables = ["qsgem"]\nend\n`,
    'lib/qsgem.rb': 'module Qsgem; end\n',
    'bin/qsgem': '#!/usr/bin/env ruby\nputs "qsgem"\n',
  });
  runInChroot(root, ['gem', 'build', 'qsgem.gemspec'], { cwd: '/root/qsgem' });
  runInChroot(root, ['gem', 'install', '--local', '--no-document', `/root/qsgem/${GEM_DEMO.name}-${GEM_DEMO.version}.gem`]);
}

export const CPAN_DEMO = { name: 'Qs::Fix', version: '0.05' };

/** `perl Makefile.PL && make && make install`: the module, perllocal.pod and a .packlist. */
export function cpanInstallDemo(root: string): void {
  writeTree(path.join(root, 'root/Qs-Fix'), {
    'Makefile.PL': `use ExtUtils::MakeMaker;\nWriteMakefile(NAME => '${CPAN_DEMO.name}', VERSION => '${CPAN_DEMO.version}', EXE_FILES => ['bin/qs-fix']);\n`,
    'lib/Qs/Fix.pm': 'package Qs::Fix;\n1;\n',
    'bin/qs-fix': '#!/usr/bin/perl\nprint "fix\\n";\n',
  });
  runInChroot(root, ['perl', 'Makefile.PL'], { cwd: '/root/Qs-Fix' });
  runInChroot(root, ['make'], { cwd: '/root/Qs-Fix' });
  runInChroot(root, ['make', 'install'], { cwd: '/root/Qs-Fix' });
}

export const NPM_DEMO = { name: '@qs/npm-tool', version: '1.2.3', bin: 'qs-npm' };

/** `npm pack` then `npm install -g --prefix <root>/usr/local` of the tarball: npm's own global layout. */
export function npmInstallDemo(root: string): void {
  const src = mkdtempSync(path.join(tmpdir(), 'qs-npm-'));
  try {
    writeTree(path.join(src, 'pkg'), {
      'package.json': JSON.stringify({ name: NPM_DEMO.name, version: NPM_DEMO.version, bin: { [NPM_DEMO.bin]: 'cli.js' }, license: 'MIT' }),
      'cli.js': '#!/usr/bin/env node\nconsole.log("qs");\n',
      'lib/index.js': 'export const x = 1;\n',
    });
    const npmEnv = { ...process.env, npm_config_cache: path.join(src, 'cache'), npm_config_update_notifier: 'false' };
    execFileSync('npm', ['pack', '--pack-destination', src], { cwd: path.join(src, 'pkg'), stdio: 'pipe', env: npmEnv });
    const tgz = readdirSync(src).find((f) => f.endsWith('.tgz'))!;
    execFileSync('npm', ['install', '-g', '--prefix', path.join(root, 'usr/local'), '--offline', '--no-audit', '--no-fund', path.join(src, tgz)], { stdio: 'pipe', env: npmEnv });
  } finally {
    rmSync(src, { recursive: true, force: true });
  }
}
