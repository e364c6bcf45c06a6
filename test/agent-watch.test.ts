// The realtime watcher against a real debootstrap tree: real inotify watches (fs.watch), real
// writes, a real dpkg install in a chroot, and a real node-cron schedule for the fallback.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { FolderWatch } from '../agent/daemon/folder-watch.js';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultPolicy } from '../shared/policy.js';
import type { Manifest } from '../shared/manifest.js';
import { parseReport } from '../shared/report.js';
import type { Finding, Report } from '../shared/report.js';
import { manifestFromObservation } from '../agent/manifest/build.js';
import { observe } from '../agent/fingerprint/observe.js';
import { openRoot } from '../agent/root.js';
import type { Root } from '../agent/root.js';
import { startWatch } from '../agent/daemon/watch.js';
import type { RealtimeWatch } from '../agent/daemon/watch.js';
import { startMonitor } from '../agent/daemon/monitor.js';
import { createConfigTextReader } from '../agent/fingerprint/config-text.js';
import { copyTree, ensureMinbase, withPackagesPath } from './helpers/debian-root.js';

let tree: { dir: string; remove: () => void };
let root: Root;
let manifest: Manifest;

beforeAll(async () => {
  tree = copyTree(ensureMinbase());
  root = await openRoot(tree.dir);
  const obs = await observe(root, defaultPolicy());
  manifest = manifestFromObservation(obs, defaultPolicy(), { name: 'debian-minbase', version: '1' }, new Date('2026-11-29T00:00:00Z'));
});

afterAll(() => tree?.remove());

/** This process and its descendants (the inotifywait child that holds the folder watches). */
function selfAndDescendants(): number[] {
  const out = [process.pid];
  for (let i = 0; i < out.length; i++) {
    for (const task of readdirSync(`/proc/${out[i]}/task`)) {
      try {
        out.push(...readFileSync(`/proc/${out[i]}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number));
      } catch {
        // ended meanwhile
      }
    }
  }
  return out;
}

/** Inode numbers of every inotify watch this process and its children hold, from /proc/PID/fdinfo. */
function inotifyWatchedInodes(): Set<number> {
  const inodes = new Set<number>();
  for (const pid of selfAndDescendants()) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue; // ended meanwhile
    }
    for (const fd of fds) {
      let target: string;
      try {
        target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target !== 'anon_inode:inotify') continue;
        for (const m of readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8').matchAll(/^inotify wd:\S+ ino:([0-9a-f]+) /gm)) inodes.add(parseInt(m[1]!, 16));
      } catch {
        continue; // closed meanwhile
      }
    }
  }
  return inodes;
}

const brief = (f: Finding): string => [f.kind, f.severity, f.path ?? `${f.ecosystem}:${f.name}`].join(' ');

/** Starts a watcher that collects its reports (each checked against the report schema). */
async function watching(opts: Partial<Parameters<typeof startWatch>[0]> = {}): Promise<{ watch: RealtimeWatch; reports: Report[] }> {
  const reports: Report[] = [];
  const watch = startWatch({
    root,
    manifest,
    hostname: 'test-host',
    debounceMs: 300,
    onReport: (r) => {
      reports.push(parseReport(JSON.parse(JSON.stringify(r)), 'event report'));
    },
    ...opts,
  });
  await watch.ready;
  return { watch, reports };
}

/** Waits for the first report, then until the watcher is quiet for a few debounce periods. */
async function settle(watch: RealtimeWatch, reports: Report[], debounceMs = 300): Promise<void> {
  await vi.waitFor(() => expect(reports.length).toBeGreaterThan(0), { timeout: 20_000, interval: 20 });
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, debounceMs * 2));
    await watch.idle();
  }
}

describe('realtime watch of a debootstrap tree', () => {
  it('turns a file dropped into a system path into one event report with its finding', async () => {
    const { watch, reports } = await watching();
    try {
      expect(watch.state()).toEqual({ state: 'ok' });
      // Only folders are watched, and never the ignored ones.
      expect(watch.watchedDirs()).toBe(manifest.files.filter((f) => f.type === 'dir').length);
      writeFileSync(path.join(tree.dir, 'usr/local/bin/dropped'), '#!/bin/sh\necho hi\n', { mode: 0o755 });
      await settle(watch, reports);
      expect(reports).toHaveLength(1);
      const r = reports[0]!;
      expect(r.scan).toBe('event');
      expect(r.watch).toEqual({ state: 'ok' });
      expect(r.scope).toEqual({ paths: ['/usr/local/bin/dropped'], subtrees: [], packages: false });
      expect(r.findings.map(brief)).toEqual(['file-added high /usr/local/bin/dropped']);
      expect(r.summary.status).toBe('drift');
    } finally {
      await watch.close();
    }
  });

  it('holds the folder watches in one inotifywait child, none in the daemon but the package database folder', async () => {
    const { watch, reports } = await watching();
    try {
      const own = new Set<number>();
      for (const fd of readdirSync('/proc/self/fd')) {
        try {
          if (readlinkSync(`/proc/self/fd/${fd}`) !== 'anon_inode:inotify') continue;
          for (const m of readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8').matchAll(/^inotify wd:\S+ ino:([0-9a-f]+) /gm)) own.add(parseInt(m[1]!, 16));
        } catch {
          // closed meanwhile
        }
      }
      expect([...own]).toEqual([statSync(path.join(tree.dir, 'var/lib/dpkg')).ino]);
      expect(inotifyWatchedInodes().size).toBe(watch.watchedDirs() + 1);
      expect(watch.watchedDirs()).toBe(manifest.files.filter((f) => f.type === 'dir').length);
      writeFileSync(path.join(tree.dir, 'usr/local/bin/through-the-child'), 'x');
      await settle(watch, reports);
      expect(reports.flatMap((r) => r.findings).map(brief)).toContain('file-added low /usr/local/bin/through-the-child');
      rmSync(path.join(tree.dir, 'usr/local/bin/through-the-child'));
      reports.length = 0;
      await settle(watch, reports);
    } finally {
      await watch.close();
    }
  });

  it('falls back to one fs.watch per folder in the daemon, with the same reports', async () => {
    const { watch, reports } = await watching({ createWatcher: (options) => new FolderWatch(options) });
    try {
      expect(watch.watchedDirs()).toBe(manifest.files.filter((f) => f.type === 'dir').length);
      mkdirSync(path.join(tree.dir, 'usr/local/lib/fallback'));
      writeFileSync(path.join(tree.dir, 'usr/local/lib/fallback/f'), 'x');
      await settle(watch, reports);
      expect(reports.flatMap((r) => r.findings).map(brief)).toContain('file-added low /usr/local/lib/fallback/f');
      reports.length = 0;
      rmSync(path.join(tree.dir, 'usr/local/lib/fallback'), { recursive: true });
      await settle(watch, reports);
    } finally {
      await watch.close();
    }
  });

  it('reports a file changed back to its manifest state with no finding for that path', async () => {
    const { watch, reports } = await watching();
    try {
      const file = path.join(tree.dir, 'etc/debian_version');
      execFileSync('chmod', ['0600', file]);
      await settle(watch, reports);
      expect(reports.flatMap((r) => r.findings).map(brief)).toEqual(['file-metadata medium /etc/debian_version']);
      reports.length = 0;
      execFileSync('chmod', ['0644', file]);
      await settle(watch, reports);
      // In scope, nothing found: the receiver clears what it held for this path.
      expect(reports).toHaveLength(1);
      expect(reports[0]!.scope?.paths).toEqual(['/etc/debian_version']);
      expect(reports[0]!.findings).toEqual([]);
    } finally {
      await watch.close();
    }
  });

  it("sends an edited config file's text before and after, masked, with its event finding", async () => {
    const withText = { ...manifest, files: manifest.files.map((f) => ({ ...f })) };
    await createConfigTextReader(root, manifest.policy).fillRecords(withText.files);
    const before = readFileSync(path.join(tree.dir, 'etc/issue'), 'utf8');
    expect(withText.files.find((f) => f.path === '/etc/issue')!.text).toBe(before);
    const { watch, reports } = await watching({ manifest: withText });
    try {
      writeFileSync(path.join(tree.dir, 'etc/issue'), `${before}api_token=hunter2\n`);
      await settle(watch, reports);
      const found = reports.flatMap((r) => r.findings).find((f) => f.path === '/etc/issue')!;
      expect(found.kind).toBe('file-modified');
      expect(found.text).toEqual({ before, after: `${before}api_token=********\n` });
    } finally {
      await watch.close();
      writeFileSync(path.join(tree.dir, 'etc/issue'), before);
    }
  });

  it('batches 200 files written at once into one report', async () => {
    const { watch, reports } = await watching();
    try {
      const dir = path.join(tree.dir, 'usr/local/lib/burst');
      mkdirSync(dir);
      for (let i = 0; i < 200; i++) writeFileSync(path.join(dir, `f${String(i).padStart(3, '0')}.dat`), `data ${i}\n`);
      await settle(watch, reports);
      expect(reports).toHaveLength(1);
      const r = reports[0]!;
      expect(r.scope).toEqual({ paths: [], subtrees: ['/usr/local/lib/burst'], packages: false });
      expect(r.findings).toHaveLength(201);
      expect(r.findings.filter((f) => f.kind === 'file-added' && f.path?.startsWith('/usr/local/lib/burst/f'))).toHaveLength(200);
    } finally {
      await watch.close();
    }
  });

  it('reports a removed folder as one subtree with everything that was in it', async () => {
    const { watch, reports } = await watching();
    try {
      const before = manifest.files.filter((f) => f.path === '/usr/share/doc/sed' || f.path.startsWith('/usr/share/doc/sed/')).length;
      expect(before).toBeGreaterThan(1);
      rmSync(path.join(tree.dir, 'usr/share/doc/sed'), { recursive: true });
      await settle(watch, reports);
      const removed = reports.flatMap((r) => r.findings).filter((f) => f.kind === 'file-removed');
      expect(removed).toHaveLength(before);
      expect(reports.at(-1)!.scope?.subtrees).toContain('/usr/share/doc/sed');
      expect(removed.every((f) => f.owner?.name === 'sed' && f.severity === 'high')).toBe(true);
    } finally {
      await watch.close();
    }
  });

  it('degrades rather than lose a batch its receiver could not take', async () => {
    let calls = 0;
    const { watch, reports } = await watching({
      onReport: (r) => {
        calls++;
        if (calls === 1) throw new Error('outbox full');
        reports.push(r);
      },
    });
    try {
      writeFileSync(path.join(tree.dir, 'opt/lost-if-silent'), 'x');
      await settle(watch, reports);
      expect(watch.state()).toEqual({ state: 'degraded', reason: 'event scan failed: outbox full' });
      expect(reports.map((r) => r.watch?.state)).toEqual(['degraded']);
    } finally {
      await watch.close();
    }
  });

  it('puts no watch on an ignored folder, nor below it', async () => {
    mkdirSync(path.join(tree.dir, 'usr/share/ignored-test/__pycache__/deeper'), { recursive: true });
    const { watch } = await watching();
    try {
      // Asked of the kernel: the inodes this process holds inotify watches on.
      const watched = inotifyWatchedInodes();
      const ino = (p: string): number => statSync(path.join(tree.dir, p)).ino;
      expect(watched.has(ino('usr/share/ignored-test'))).toBe(true);
      expect(watched.has(ino('usr/share/ignored-test/__pycache__'))).toBe(false);
      expect(watched.has(ino('usr/share/ignored-test/__pycache__/deeper'))).toBe(false);
      // No file carries a watch of its own, and outside the tracked paths only dpkg's folder does.
      expect(watched.has(ino('usr/bin/ls'))).toBe(false);
      expect(watched.has(ino('var/lib'))).toBe(false);
      expect(watched.has(ino('var/lib/dpkg'))).toBe(true);
      expect(watched.size).toBe(watch.watchedDirs() + 1);
    } finally {
      await watch.close();
    }
  });

  it('has every folder watch attached when it says ready, even with tracked paths that do not exist', async () => {
    // A missing tracked path must not make 'ready' come before the last folders have a watch:
    // a change right after `ready` would be lost.
    const missing = { ...manifest, policy: { ...manifest.policy, tracked: [...manifest.policy.tracked, '/not-here-1', '/not-here-2', '/not-here-3'] } };
    const { watch } = await watching({ manifest: missing });
    try {
      expect(inotifyWatchedInodes().size).toBe(watch.watchedDirs() + 1);
    } finally {
      await watch.close();
    }
  });

  it('watches a folder made after ready, and lets go of one that is removed', async () => {
    const { watch, reports } = await watching();
    try {
      const before = watch.watchedDirs();
      mkdirSync(path.join(tree.dir, 'usr/local/lib/later/deeper'), { recursive: true });
      await settle(watch, reports);
      expect(watch.watchedDirs()).toBe(before + 2);
      expect(inotifyWatchedInodes().size).toBe(watch.watchedDirs() + 1);
      // A write into the new folder's own subfolder is seen through the watch it was given.
      reports.length = 0;
      writeFileSync(path.join(tree.dir, 'usr/local/lib/later/deeper/f'), 'x');
      await settle(watch, reports);
      expect(reports.flatMap((r) => r.findings).map(brief)).toContain('file-added low /usr/local/lib/later/deeper/f');
      expect(reports.flatMap((r) => r.scope?.paths ?? [])).toContain('/usr/local/lib/later/deeper/f');
      // Removed and made again under the same name: the new folder is watched, the old watches are gone.
      reports.length = 0;
      rmSync(path.join(tree.dir, 'usr/local/lib/later'), { recursive: true });
      mkdirSync(path.join(tree.dir, 'usr/local/lib/later'));
      await settle(watch, reports);
      expect(watch.watchedDirs()).toBe(before + 1);
      expect(inotifyWatchedInodes().size).toBe(watch.watchedDirs() + 1);
      reports.length = 0;
      writeFileSync(path.join(tree.dir, 'usr/local/lib/later/g'), 'x');
      await settle(watch, reports);
      expect(reports.flatMap((r) => r.findings).map((f) => f.path)).toContain('/usr/local/lib/later/g');
      rmSync(path.join(tree.dir, 'usr/local/lib/later'), { recursive: true });
      reports.length = 0;
      await settle(watch, reports);
      expect(watch.watchedDirs()).toBe(before);
    } finally {
      await watch.close();
    }
  });

  it('never reports writes to ignored folders', async () => {
    const { watch, reports } = await watching();
    try {
      writeFileSync(path.join(tree.dir, 'var/log/noise.log'), 'noise');
      writeFileSync(path.join(tree.dir, 'tmp/noise'), 'noise');
      mkdirSync(path.join(tree.dir, 'usr/lib/python3/dist-packages/__pycache__'), { recursive: true });
      writeFileSync(path.join(tree.dir, 'usr/lib/python3/dist-packages/__pycache__/x.pyc'), 'noise');
      // A marker that is reported, so the test knows the noise had its chance to be seen.
      writeFileSync(path.join(tree.dir, 'opt/marker'), 'x');
      await settle(watch, reports);
      const all = reports.flatMap((r) => [...r.findings.map((f) => f.path), ...(r.scope?.paths ?? []), ...(r.scope?.subtrees ?? [])]);
      expect(all).toContain('/opt/marker');
      for (const p of all) expect(p).not.toMatch(/^\/(var\/log|tmp)\b|__pycache__/);
    } finally {
      await watch.close();
    }
  });

  it('makes a real dpkg install one report: the package with its files under it', async () => {
    // `less` comes from the apt cache of the fixture tree that installed it; dpkg -i is offline.
    const archives = path.join(withPackagesPath(), 'var/cache/apt/archives');
    const deb = readdirSync(archives).find((n) => n.startsWith('less_') && n.endsWith('.deb'));
    expect(deb).toBeDefined();
    copyFileSync(path.join(archives, deb!), path.join(tree.dir, 'var/cache/apt/archives', deb!));
    const { watch, reports } = await watching({ debounceMs: 1000, maxWaitMs: 30_000 });
    try {
      execFileSync('chroot', [tree.dir, 'dpkg', '-i', `/var/cache/apt/archives/${deb}`], {
        stdio: 'ignore',
        timeout: 60_000,
        env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', DEBIAN_FRONTEND: 'noninteractive', LANG: 'C' },
      });
      await settle(watch, reports, 1000);
      expect(reports).toHaveLength(1);
      const r = reports[0]!;
      expect(r.scope?.packages).toBe(true);
      const less = r.findings.find((f) => f.kind === 'package-added' && f.name === 'less');
      expect(less).toBeDefined();
      expect(less!.changes!.map(brief)).toEqual(expect.arrayContaining(['file-added high /usr/bin/less']));
      expect(less!.changes!.length).toBeGreaterThan(10);
      // Nothing of the install leaks to the top level as loose files.
      expect(r.findings.filter((f) => f.path?.includes('less'))).toEqual([]);
      // The dpkg run that explains it travels with the report (dpkg's own log).
      expect(less!.changeSet).toMatch(/^dpkg:/);
      expect(r.changeSets?.map((cs) => [cs.id, cs.tool])).toEqual([[less!.changeSet, 'dpkg']]);
    } finally {
      await watch.close();
    }
  });
});

describe('the monitor', () => {
  it('scans in full once the watch is up, catching what changed while it was not running', async () => {
    writeFileSync(path.join(tree.dir, 'usr/local/bin/while-stopped'), '#!/bin/sh\n', { mode: 0o755 });
    const reports: Report[] = [];
    const errors: unknown[] = [];
    const monitor = startMonitor({ root, manifest, hostId: 'host-start', hostname: 'test-host', onReport: (r) => void reports.push(r), onError: (e) => errors.push(e) });
    try {
      await monitor.ready;
      // The default schedule: hourly, at this host's own second and minute.
      expect(monitor.schedule).toMatch(/^\d{1,2} \d{1,2} \* \* \* \*$/);
      await vi.waitFor(() => expect(reports.filter((r) => r.scan === 'full')).toHaveLength(1), { timeout: 30_000, interval: 50 });
      const full = reports.find((r) => r.scan === 'full')!;
      expect(full.watch).toEqual({ state: 'ok' });
      expect(full.scope).toBeUndefined();
      expect(full.findings.map((f) => f.path)).toContain('/usr/local/bin/while-stopped');
      expect(errors).toEqual([]);
    } finally {
      await monitor.close();
    }
  });
});

describe('when watching fails', () => {
  it('gives up past its folder limit, says why, and the scheduled full scan still finds the change', async () => {
    const reports: Report[] = [];
    const errors: unknown[] = [];
    const monitor = startMonitor({
      root,
      manifest,
      hostId: 'host-degraded',
      hostname: 'test-host',
      schedule: '* * * * * *', // every second, so the test need not wait an hour
      watch: { maxWatchedDirs: 10 },
      onReport: (r) => {
        reports.push(parseReport(JSON.parse(JSON.stringify(r)), 'report'));
      },
      onError: (err) => errors.push(err),
    });
    try {
      await monitor.ready;
      expect(monitor.watchState()).toMatchObject({ state: 'degraded', reason: expect.stringMatching(/watch limit reached: more than 10 folders/) });
      await vi.waitFor(() => expect(reports.some((r) => r.scan === 'event' && r.watch?.state === 'degraded')).toBe(true), { timeout: 20_000, interval: 20 });
      // A change made only now, after the watcher gave up, can only be found by a scheduled scan.
      await vi.waitFor(() => expect(reports.some((r) => r.scan === 'full')).toBe(true), { timeout: 30_000, interval: 50 });
      const fullBefore = reports.filter((r) => r.scan === 'full').length;
      writeFileSync(path.join(tree.dir, 'usr/local/bin/after-degrade'), '#!/bin/sh\n', { mode: 0o755 });
      await vi.waitFor(
        () => {
          const later = reports.filter((r) => r.scan === 'full').slice(fullBefore);
          expect(later.some((r) => r.findings.some((f) => f.path === '/usr/local/bin/after-degrade'))).toBe(true);
        },
        { timeout: 40_000, interval: 50 },
      );
      const found = reports.filter((r) => r.scan === 'full').at(-1)!;
      expect(found.watch).toMatchObject({ state: 'degraded' });
      expect(reports.filter((r) => r.scan === 'event').flatMap((r) => r.findings)).toEqual([]);
      expect(errors).toEqual([]);
    } finally {
      await monitor.close();
    }
  });

  it('watches again at the next scheduled scan once watching works again', async () => {
    const made: FolderWatch[] = [];
    const reports: Report[] = [];
    const errors: unknown[] = [];
    const monitor = startMonitor({
      root,
      manifest,
      hostId: 'host-recovers',
      hostname: 'test-host',
      schedule: '* * * * * *',
      initialScan: false,
      watch: { debounceMs: 300, createWatcher: (options) => (made.push(new FolderWatch(options)), made.at(-1)!) },
      onReport: (r) => void reports.push(r),
      onError: (e) => errors.push(e),
    });
    try {
      await monitor.ready;
      made[0]!.emit('error', Object.assign(new Error('ENOSPC: System limit for number of file watchers reached'), { code: 'ENOSPC' }));
      expect(monitor.watchState().state).toBe('degraded');
      // The scheduled scan that follows a successful new watch says so.
      await vi.waitFor(() => expect(reports.some((r) => r.scan === 'full' && r.watch?.state === 'ok')).toBe(true), { timeout: 30_000, interval: 50 });
      expect(monitor.watchState()).toEqual({ state: 'ok' });
      expect(made.length).toBe(2);
      expect(made[0]!.closed).toBe(true);
      // Realtime again: a write shows up as an event report, not only in the next full scan.
      writeFileSync(path.join(tree.dir, 'usr/local/bin/after-recovery'), '#!/bin/sh\n', { mode: 0o755 });
      await vi.waitFor(() => expect(reports.some((r) => r.scan === 'event' && r.findings.some((f) => f.path === '/usr/local/bin/after-recovery'))).toBe(true), {
        timeout: 20_000,
        interval: 20,
      });
      expect(reports.filter((r) => r.scan === 'full').map((r) => r.watch?.state)).toContain('degraded');
      expect(errors).toEqual([]);
    } finally {
      await monitor.close();
    }
  });

  it('reports an inotify ENOSPC as degraded with the reason', async () => {
    let instance: FolderWatch | undefined;
    const degraded: string[] = [];
    const { watch, reports } = await watching({
      createWatcher: (options) => (instance = new FolderWatch(options)),
      onDegraded: (reason) => degraded.push(reason),
    });
    try {
      expect(watch.state().state).toBe('ok');
      // What fs.watch says when fs.inotify.max_user_watches is used up, through the watcher's error path.
      const enospc = Object.assign(new Error('ENOSPC: System limit for number of file watchers reached, watch'), { code: 'ENOSPC', errno: -28, syscall: 'watch' });
      instance!.emit('error', enospc);
      await settle(watch, reports);
      expect(degraded).toEqual([expect.stringMatching(/inotify watch limit/)]);
      expect(reports).toHaveLength(1);
      expect(reports[0]!.watch).toMatchObject({ state: 'degraded', reason: expect.stringMatching(/max_user_watches/) });
      expect(instance!.closed).toBe(true);
    } finally {
      await watch.close();
    }
  });
});
