import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isPipCommand, lockIdentity, parseProcLocks, runningTransaction } from './package-transaction.js';

describe('/proc/locks', () => {
  it('is read as pid and major:minor:inode (hex device numbers), waiters left out', () => {
    const text = ['1: POSIX  ADVISORY  WRITE 24635 fe:00:1482755 0 EOF', '1: -> POSIX  ADVISORY  WRITE 24700 fe:00:1482755 0 EOF', '2: OFDLCK ADVISORY  READ  -1 00:1a:42 0 EOF', '3: FLOCK  ADVISORY  WRITE 99 103:0a:7 0 EOF', ''].join('\n');
    expect(parseProcLocks(text)).toEqual([
      { pid: 24635, file: '254:0:1482755' },
      { pid: -1, file: '0:26:42' },
      { pid: 99, file: '259:10:7' },
    ]);
  });

  it('names a file as a stat of it does', () => {
    expect(lockIdentity(0xfe00n, 1482755n)).toBe('254:0:1482755');
    expect(lockIdentity(0x1030an, 7n)).toBe('259:10:7');
  });
});

describe('a pip run', () => {
  it('is told by its command line', () => {
    expect(isPipCommand(['/usr/bin/python3', '/usr/bin/pip', 'install', 'x'])).toBe(true);
    expect(isPipCommand(['pip3', 'install', 'x'])).toBe(true);
    expect(isPipCommand(['python3.11', '-m', 'pip', 'install', 'x'])).toBe(true);
    expect(isPipCommand(['/usr/bin/python3', 'script.py', 'pip'])).toBe(false);
    expect(isPipCommand(['/usr/bin/pipewire'])).toBe(false);
  });
});

describe('a running transaction on a root', () => {
  let dir: string | undefined;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('is seen while a process holds the root\'s dpkg lock, and not once it let go', async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'quicksand-lock-'));
    mkdirSync(path.join(dir, 'var/lib/dpkg'), { recursive: true });
    const lock = path.join(dir, 'var/lib/dpkg/lock-frontend');
    writeFileSync(lock, '');
    expect(statSync(lock).size).toBe(0);
    expect(await runningTransaction(dir)).toBeNull();
    // flock(1) takes the lock as dpkg would hold it (a kernel lock on the file, in /proc/locks).
    const holder = spawn('flock', ['--no-fork', lock, 'sleep', '30'], { stdio: 'ignore' });
    try {
      let seen: string | null = null;
      for (let i = 0; i < 100 && seen === null; i++) {
        seen = await runningTransaction(dir);
        if (seen === null) await new Promise((r) => setTimeout(r, 20));
      }
      expect(seen).toMatch(/^\/var\/lib\/dpkg\/lock-frontend held by pid \d+$/);
      // Another root's lock file is not this root's transaction.
      const other = mkdtempSync(path.join(tmpdir(), 'quicksand-lock-other-'));
      mkdirSync(path.join(other, 'var/lib/dpkg'), { recursive: true });
      writeFileSync(path.join(other, 'var/lib/dpkg/lock-frontend'), '');
      expect(await runningTransaction(other)).toBeNull();
      rmSync(other, { recursive: true, force: true });
    } finally {
      holder.kill('SIGTERM');
      await new Promise((r) => holder.once('exit', r));
    }
    expect(await runningTransaction(dir)).toBeNull();
  });
});
