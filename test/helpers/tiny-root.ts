// A small root folder with a manifest of itself: scans of it take milliseconds, so the wire
// tests can produce many real reports quickly.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { readManifestFile } from '../../agent/manifest/io.js';
import { openRoot } from '../../agent/root.js';
import { scanRoot } from '../../agent/diff/scan.js';
import type { Report } from '../../shared/report.js';
import { runCli } from './processes.js';

export interface TinyRoot {
  dir: string;
  root: string;
  manifest: string;
  /** One real report of the root against its manifest. */
  scan(hostname: string): Promise<Report>;
  remove(): void;
}

export function makeTinyRoot(): TinyRoot {
  const dir = mkdtempSync(path.join(tmpdir(), 'quicksand-wire-'));
  const root = path.join(dir, 'root');
  mkdirSync(path.join(root, 'etc'), { recursive: true });
  mkdirSync(path.join(root, 'usr/bin'), { recursive: true });
  writeFileSync(path.join(root, 'etc/motd'), 'welcome\n');
  writeFileSync(path.join(root, 'usr/bin/tool'), '#!/bin/sh\necho tool\n');
  chmodSync(path.join(root, 'usr/bin/tool'), 0o755);
  const manifest = path.join(dir, 'manifest.json');
  const r = runCli('agent', ['manifest', '--root', root, '--out', manifest, '--name', 'tiny', '--image-version', '1', '-q']);
  if (r.code !== 0) throw new Error(`manifest failed: ${r.stderr}`);
  return {
    dir,
    root,
    manifest,
    scan: async (hostname) => scanRoot(await openRoot(root), await readManifestFile(manifest), { hostname }),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
