// What the walk checks at a folder before it goes in, and how it words what it could not read:
// shared by the walk on the main thread and the walk threads (walk-thread.ts).
import { statfsSync } from 'node:fs';
import type { ScanWarning } from '../../shared/report.js';

// statfs f_type of kernel pseudo filesystems: never walked, even when crossing mounts is asked.
const PSEUDO_FS = new Set([
  0x9fa0 /* proc */, 0x62656572 /* sysfs */, 0x1cd1 /* devpts */, 0x27e0eb /* cgroup */, 0x63677270 /* cgroup2 */,
  0x64626720 /* debugfs */, 0x74726163 /* tracefs */, 0x73636673 /* securityfs */, 0xcafe4a11 /* bpf */,
  0x6165676c /* pstore */, 0x62656570 /* configfs */, 0x65735543 /* fusectl */, 0x19800202 /* mqueue */,
  0x42494e4d /* binfmt_misc */, 0x6e736673 /* nsfs */, 0x958458f6 /* hugetlbfs */, 0x187 /* autofs */,
  0x50495045 /* pipefs */, 0x534f434b /* sockfs */, 0x67596969 /* rpc_pipefs */, 0xf97cff8c /* selinuxfs */,
  0x6c6f6f70 /* binder */,
]);

export function isPseudoFs(host: Buffer): boolean {
  try {
    return PSEUDO_FS.has(Number(statfsSync(host.toString('utf8')).type));
  } catch {
    return false;
  }
}

export function pseudoFsSkipped(path: string): ScanWarning {
  return { code: 'PSEUDO_FS_SKIPPED', path, message: 'a kernel pseudo filesystem (like /proc) is mounted here; it is never walked' };
}

export function mountNotCrossed(path: string): ScanWarning {
  return { code: 'MOUNT_NOT_CROSSED', path, message: 'another filesystem is mounted here; its contents were not walked (--cross-mounts walks it)' };
}

export function errorCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

function describe(err: unknown): string {
  switch (errorCode(err)) {
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOENT':
      return 'vanished during the scan';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

export function warn(err: unknown, path: string): ScanWarning {
  return { code: errorCode(err) === 'EACCES' || errorCode(err) === 'EPERM' ? 'UNREADABLE' : 'READ_FAILED', path, message: describe(err) };
}
