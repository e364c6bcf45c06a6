import { ensureWithLanguages, ensureWithPackages } from './helpers/debian-root.js';

// Build the cached Debian trees once, before any test file runs, so parallel files never race.
export default function setup(): void {
  ensureWithPackages();
  ensureWithLanguages();
}
