// The capability decoder on values the real `setcap` wrote (libcap2-bin): every revision the
// kernel writes for it, with the sets `getcap` reads back.
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { capabilityText, decodeCapability } from '../agent/fingerprint/capability.js';
import { readSecurityXattrs } from '../agent/fingerprint/xattrs.js';
import { CACHE_DIR } from './helpers/debian-root.js';

const xattr = createRequire(import.meta.url)('@napi-rs/xattr') as { getAttributeSync(p: string, n: string): Buffer | null };
const dir = mkdtempSync(path.join(CACHE_DIR, 'caps-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A fresh file with `setcap ARGS` applied; returns the raw xattr and what getcap prints. */
function withCaps(...args: string[]): { value: Buffer; getcap: string; file: string } {
  const file = path.join(dir, `f${n++}`);
  copyFileSync('/bin/true', file);
  execFileSync('setcap', [...args, file]);
  const value = xattr.getAttributeSync(file, 'security.capability')!;
  const getcap = execFileSync('getcap', ['-n', file], { encoding: 'utf8' }).trim().slice(file.length + 1);
  return { value, getcap, file };
}

describe('decodeCapability on values setcap wrote', () => {
  it('decodes an effective+permitted set (revision 2) to the names getcap prints', () => {
    const { value, getcap } = withCaps('cap_net_raw,cap_net_bind_service+ep');
    expect(value.readUInt32LE(0) >>> 24).toBe(2);
    const cap = decodeCapability(value)!;
    expect(cap).toEqual({ effective: true, permitted: ['cap_net_bind_service', 'cap_net_raw'], inheritable: [] });
    expect(capabilityText(cap)).toBe(getcap);
    expect(getcap).toBe('cap_net_bind_service,cap_net_raw=ep');
  });

  it('decodes permitted without effective, and inheritable', () => {
    const p = decodeCapability(withCaps('cap_sys_admin+p').value)!;
    expect(p).toEqual({ effective: false, permitted: ['cap_sys_admin'], inheritable: [] });
    const ip = withCaps('cap_dac_override+ip');
    expect(decodeCapability(ip.value)).toEqual({ effective: false, permitted: ['cap_dac_override'], inheritable: ['cap_dac_override'] });
    expect(capabilityText(decodeCapability(ip.value)!)).toBe(ip.getcap);
  });

  it('decodes capabilities above 31 (the second word)', () => {
    const { value } = withCaps('cap_bpf,cap_perfmon,cap_chown+ep');
    expect(decodeCapability(value)).toEqual({ effective: true, permitted: ['cap_chown', 'cap_perfmon', 'cap_bpf'], inheritable: [] });
  });

  it('decodes a namespaced set (revision 3) with its root uid, as getcap -n shows it', () => {
    const { value, getcap } = withCaps('-n', '1000', 'cap_net_raw+ep');
    expect(value.readUInt32LE(0) >>> 24).toBe(3);
    const cap = decodeCapability(value)!;
    expect(cap).toEqual({ effective: true, permitted: ['cap_net_raw'], inheritable: [], rootid: 1000 });
    expect(capabilityText(cap)).toBe(getcap);
  });

  it('refuses values the kernel would not accept', () => {
    const good = withCaps('cap_net_raw+ep').value;
    expect(decodeCapability(good.subarray(0, 12))).toBeNull(); // revision 2 cut to revision 1's size
    expect(decodeCapability(Buffer.concat([good, Buffer.alloc(4)]))).toBeNull();
    const badRevision = Buffer.from(good);
    badRevision.writeUInt32LE(0x09000001, 0);
    expect(decodeCapability(badRevision)).toBeNull();
    expect(decodeCapability(Buffer.alloc(2))).toBeNull();
  });

  it('reads them from a file as the walk does, and nothing from a file without any', () => {
    const { file } = withCaps('cap_setuid+ep');
    expect(readSecurityXattrs(file, '/x')).toEqual({ xattrs: { capability: { effective: true, permitted: ['cap_setuid'], inheritable: [] } } });
    const plain = path.join(dir, 'plain');
    copyFileSync('/bin/true', plain);
    expect(readSecurityXattrs(plain, '/plain')).toEqual({});
  });
});
