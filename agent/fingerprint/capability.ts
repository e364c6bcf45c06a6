// The `security.capability` xattr, as the kernel defines it (linux/capability.h, struct
// vfs_cap_data / vfs_ns_cap_data): a little-endian u32 `magic_etc` (revision in the top byte,
// VFS_CAP_FLAGS_EFFECTIVE in bit 0), then one {permitted, inheritable} pair of u32 per 32
// capabilities (one pair in revision 1, two in 2 and 3), then in revision 3 the namespace's root uid.
import type { FileCapability } from '../../shared/manifest.js';

// Bit n of the sets is capability n; names as libcap spells them (cap_to_name).
export const CAPABILITY_NAMES = [
  'cap_chown', 'cap_dac_override', 'cap_dac_read_search', 'cap_fowner', 'cap_fsetid', 'cap_kill', 'cap_setgid', 'cap_setuid',
  'cap_setpcap', 'cap_linux_immutable', 'cap_net_bind_service', 'cap_net_broadcast', 'cap_net_admin', 'cap_net_raw',
  'cap_ipc_lock', 'cap_ipc_owner', 'cap_sys_module', 'cap_sys_rawio', 'cap_sys_chroot', 'cap_sys_ptrace', 'cap_sys_pacct',
  'cap_sys_admin', 'cap_sys_boot', 'cap_sys_nice', 'cap_sys_resource', 'cap_sys_time', 'cap_sys_tty_config', 'cap_mknod',
  'cap_lease', 'cap_audit_write', 'cap_audit_control', 'cap_setfcap', 'cap_mac_override', 'cap_mac_admin', 'cap_syslog',
  'cap_wake_alarm', 'cap_block_suspend', 'cap_audit_read', 'cap_perfmon', 'cap_bpf', 'cap_checkpoint_restore',
] as const;

const REVISION_MASK = 0xff000000;
const FLAGS_EFFECTIVE = 0x000001;
// revision → bytes of the whole value
const SIZES = new Map([
  [0x01000000, 12],
  [0x02000000, 20],
  [0x03000000, 24],
]);

/** Decodes a `security.capability` value; null when it is not one the kernel would accept. Pure. */
export function decodeCapability(value: Uint8Array): FileCapability | null {
  if (value.length < 4) return null;
  const view = new DataView(value.buffer, value.byteOffset, value.byteLength);
  const magic = view.getUint32(0, true);
  const revision = (magic & REVISION_MASK) >>> 0;
  const size = SIZES.get(revision);
  if (size === undefined || value.length !== size) return null;
  if ((magic & ~REVISION_MASK & ~FLAGS_EFFECTIVE) !== 0) return null;
  const words = revision === 0x01000000 ? 1 : 2;
  const permitted: string[] = [];
  const inheritable: string[] = [];
  for (let w = 0; w < words; w++) {
    const p = view.getUint32(4 + w * 8, true);
    const i = view.getUint32(8 + w * 8, true);
    for (let bit = 0; bit < 32; bit++) {
      if (p & (1 << bit)) permitted.push(capabilityName(w * 32 + bit));
      if (i & (1 << bit)) inheritable.push(capabilityName(w * 32 + bit));
    }
  }
  return {
    effective: (magic & FLAGS_EFFECTIVE) !== 0,
    permitted,
    inheritable,
    ...(revision === 0x03000000 ? { rootid: view.getUint32(20, true) } : {}),
  };
}

function capabilityName(n: number): string {
  return CAPABILITY_NAMES[n] ?? `cap_${n}`;
}

/**
 * One line for people and for comparing, in `getcap`'s words: capabilities grouped by the sets
 * they are in, `cap_net_bind_service,cap_net_raw=ep`; `[rootid=N]` as `getcap -n` prints it. Pure.
 */
export function capabilityText(cap: FileCapability): string {
  const inP = new Set(cap.permitted);
  const inI = new Set(cap.inheritable);
  const groups = new Map<string, string[]>();
  for (const name of [...new Set([...cap.permitted, ...cap.inheritable])].sort(byNumber)) {
    const flags = `${cap.effective ? 'e' : ''}${inI.has(name) ? 'i' : ''}${inP.has(name) ? 'p' : ''}`;
    const group = groups.get(flags) ?? [];
    group.push(name);
    groups.set(flags, group);
  }
  const parts = [...groups].map(([flags, names]) => `${names.join(',')}=${flags}`);
  if (parts.length === 0) parts.push(cap.effective ? '=e' : '=');
  return `${parts.join(' ')}${cap.rootid !== undefined && cap.rootid !== 0 ? ` [rootid=${cap.rootid}]` : ''}`;
}

function byNumber(a: string, b: string): number {
  return capabilityNumber(a) - capabilityNumber(b);
}

function capabilityNumber(name: string): number {
  const known = (CAPABILITY_NAMES as readonly string[]).indexOf(name);
  return known >= 0 ? known : Number(name.slice(4));
}
