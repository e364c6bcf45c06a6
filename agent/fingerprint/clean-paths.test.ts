import { describe, expect, it } from 'vitest';
import { Database } from '../sqlite.js';
import { createCleanPaths, lstatTuple } from './clean-paths.js';
import type { LstatFields } from './clean-paths.js';

const stat = (n: number): LstatFields => ({ dev: 2049, ino: 1_000_000 + n, size: 4096 * n, mtimeMs: 1_700_000_000_123.456 + n, ctimeMs: 1_700_000_001_654.321 + n, mode: 0o100644, uid: 0, gid: 4294967294 });

describe('lstatTuple', () => {
  it('writes dev, ino, size, mtime and ctime as little-endian doubles, then mode, uid and gid as 32 bits', () => {
    const st = stat(7);
    const want = Buffer.alloc(52);
    want.writeDoubleLE(st.dev, 0);
    want.writeDoubleLE(st.ino, 8);
    want.writeDoubleLE(st.size, 16);
    want.writeDoubleLE(st.mtimeMs, 24);
    want.writeDoubleLE(st.ctimeMs, 32);
    want.writeUInt32LE(st.mode, 40);
    want.writeUInt32LE(st.uid, 44);
    want.writeUInt32LE(st.gid, 48);
    expect(lstatTuple(st)).toEqual(want);
  });

  it('writes into the buffer it is given, whichever of several a caller alternates between', () => {
    // Two buffers of one pool slab (allocUnsafe): each tuple lands in its own bytes only.
    const a = Buffer.allocUnsafe(52);
    const b = Buffer.allocUnsafe(52);
    lstatTuple(stat(1), a);
    lstatTuple(stat(2), b);
    expect(a).toEqual(lstatTuple(stat(1)));
    expect(b).toEqual(lstatTuple(stat(2)));
    lstatTuple(stat(3), a);
    expect(a).toEqual(lstatTuple(stat(3)));
    expect(b).toEqual(lstatTuple(stat(2)));
  });
});

describe('clean paths look-up', () => {
  // Walk order: `/` sorts below every other byte, so `/usr/lib/x` comes before `/usr/lib-old`.
  const paths = ['/etc', '/etc/a.conf', '/usr', '/usr/lib', '/usr/lib/x', '/usr/lib/x/deep/er/still', '/usr/lib-old', '/usr/lib.d', '/usr/libz'];

  function remembered(): ReturnType<typeof createCleanPaths> {
    const db = new Database(':memory:');
    const first = createCleanPaths(db, '/root', 'm1');
    paths.forEach((p, i) => first.remember(Buffer.from(p), lstatTuple(stat(i))));
    first.flush();
    return createCleanPaths(db, '/root', 'm1', true);
  }

  it('holds every path remembered with its lstat, in walk order, long and short paths alternating', () => {
    const clean = remembered();
    expect(paths.map((p, i) => clean.holds(Buffer.from(p), stat(i)))).toEqual(paths.map(() => true));
    clean.close();
  });

  it('does not hold a path whose lstat moved, nor one never remembered, nor a name that only differs at a slash', () => {
    const clean = remembered();
    expect(clean.holds(Buffer.from('/etc'), stat(0))).toBe(true);
    expect(clean.holds(Buffer.from('/etc/a.conf'), { ...stat(1), ctimeMs: stat(1).ctimeMs + 1 })).toBe(false);
    expect(clean.holds(Buffer.from('/etc/b.conf'), stat(1))).toBe(false);
    // After a long path, a short one: the key of the last look-up must not leak into this one.
    expect(clean.holds(Buffer.from('/usr/lib/x/deep/er/still'), stat(5))).toBe(true);
    expect(clean.holds(Buffer.from('/usr/lib-old'), stat(6))).toBe(true);
    expect(clean.holds(Buffer.from('/usr/lib/d'), stat(7))).toBe(false);
    expect(clean.holds(Buffer.from('/usr/lib.d'), stat(7))).toBe(true);
    expect(clean.holds(Buffer.from('/usr/libz'), stat(8))).toBe(true);
    clean.close();
  });

  it('answers a look-up out of walk order by reading again from that path', () => {
    const clean = remembered();
    expect(clean.holds(Buffer.from('/usr/libz'), stat(8))).toBe(true);
    expect(clean.holds(Buffer.from('/etc/a.conf'), stat(1))).toBe(true);
    expect(clean.holds(Buffer.from('/usr/lib/x'), stat(4))).toBe(true);
    clean.close();
  });
});
