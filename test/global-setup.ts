import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ensureWithLanguages, ensureWithPackages } from './helpers/debian-root.js';

const REPO = fileURLToPath(new URL('..', import.meta.url));

// Before any test file runs, so parallel files never race: build dist/ once (suites run the
// built agent as a user would, and install.sh installs it; a build inside one file would rewrite
// dist/ under the others), and build the cached Debian trees.
export default function setup(): void {
  execFileSync('npm', ['run', 'build'], { cwd: REPO, stdio: ['ignore', 'ignore', 'inherit'] });
  ensureWithPackages();
  ensureWithLanguages();
}
