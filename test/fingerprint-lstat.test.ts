// The walk's lstat without fs.Stats: the same numbers as lstatSync for every file type, the same
// answers for a missing path and for an error, on the runtime the tests run on.
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lstatFromBinding, lstatPath } from '../agent/fingerprint/lstat.js';

const dir = mkdtempSync(path.join(tmpdir(), 'qs-lstat-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('lstatPath', () => {
  it('gives what lstatSync gives, for each type of file, by string or by bytes', () => {
    // Node 20 and 22 both keep the binding this reads: a fallback here would go unnoticed.
    expect(lstatFromBinding).toBe(true);
    mkdirSync(path.join(dir, 'd'));
    writeFileSync(path.join(dir, 'f'), 'twelve bytes');
    symlinkSync('f', path.join(dir, 'l'));
    execFileSync('mkfifo', [path.join(dir, 'p')]);
    for (const name of ['d', 'f', 'l', 'p']) {
      const p = path.join(dir, name);
      const st = lstatSync(p);
      const want = { dev: st.dev, ino: st.ino, mode: st.mode, nlink: st.nlink, uid: st.uid, gid: st.gid, size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs };
      expect(lstatPath(p)).toEqual(want);
      expect(lstatPath(Buffer.from(p))).toEqual(want);
    }
  });

  it('answers undefined for a missing path and throws with the errno code otherwise', () => {
    expect(lstatPath(path.join(dir, 'missing'))).toBeUndefined();
    writeFileSync(path.join(dir, 'plain'), '');
    expect(() => lstatPath(path.join(dir, 'plain/below'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
  });
});
