import { describe, expect, it } from 'vitest';
import type { Finding } from '../../shared/report.js';
import { compileSensitive, raiseSensitive, uidZeroAccounts } from './sensitive.js';

const added = (path: string): Finding => ({ kind: 'file-added', severity: 'low', path });

describe('sensitive places', () => {
  it('the policy’s own list replaces the defaults', () => {
    const own = compileSensitive({ sensitive: [{ path: '/opt/app/hooks', technique: 'T1546.004', severity: 'critical' }] });
    const hook = added('/opt/app/hooks/pre');
    raiseSensitive(hook, own, []);
    expect(hook).toMatchObject({ severity: 'critical', attack: { id: 'T1546.004' } });
    const cron = added('/etc/cron.d/x');
    raiseSensitive(cron, own, []);
    expect(cron).toEqual(added('/etc/cron.d/x'));
    const none = compileSensitive({ sensitive: [] });
    expect(none(added('/etc/ld.so.preload'))).toBeUndefined();
    expect(compileSensitive({})(added('/etc/ld.so.preload'))?.technique).toBe('T1574.006');
  });

  it('a new shared library counts, a changed one is left to the package rules', () => {
    const match = compileSensitive({});
    expect(match(added('/usr/lib/x86_64-linux-gnu/libz.so.1.2'))?.technique).toBe('T1574.006');
    expect(match({ kind: 'file-modified', severity: 'critical', path: '/usr/lib/x86_64-linux-gnu/libz.so.1.2' })).toBeUndefined();
  });

  it('never raises what the policy calls mutable (info)', () => {
    const f: Finding = { kind: 'file-modified', severity: 'info', path: '/etc/passwd' };
    raiseSensitive(f, compileSensitive({}), ['toor']);
    expect(f).toEqual({ kind: 'file-modified', severity: 'info', path: '/etc/passwd' });
  });

  it('finds the uid 0 accounts besides root', () => {
    expect(uidZeroAccounts('root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/usr/sbin/nologin\ntoor:x:0:0::/root:/bin/sh\n\n#:x:0\n')).toEqual(['toor']);
  });
});
