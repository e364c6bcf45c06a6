// Security xattrs of a regular file. Node has no getxattr: @napi-rs/xattr (prebuilt N-API, no
// compiler at install) lists a file's xattrs without following links in ~1.3 µs; the value is
// read only when one of ours is listed, which on most hosts is almost never. Measured on the
// debootstrap minbase (4,671 files under /usr): listing all of them 6.2 ms, lstat of all 6.8 ms.
import { createRequire } from 'node:module';
import type { FileRecord } from '../../shared/manifest.js';
import type { ScanWarning } from '../../shared/report.js';
import { decodeCapability } from './capability.js';

export interface XattrApi {
  listAttributesSync(path: string): string[];
  getAttributeSync(path: string, name: string): Buffer | null;
}

const CAPABILITY = 'security.capability';
const SELINUX = 'security.selinux';
const IMA = 'security.ima';
const IMA_MAX_BYTES = 2048;

let api: XattrApi | null | undefined;
let loadError: string | undefined;

/** The addon, loaded on first use; null (see `xattrLoadError`) where it has no build for this platform. */
export function xattrApi(): XattrApi | null {
  if (api === undefined) {
    try {
      api = createRequire(import.meta.url)('@napi-rs/xattr') as XattrApi;
    } catch (err) {
      api = null;
      loadError = (err as Error).message.split('\n')[0];
    }
  }
  return api;
}

/** Why the addon could not be loaded, once `xattrApi()` returned null. */
export function xattrLoadError(): string | undefined {
  return loadError;
}

export type SecurityXattrs = Pick<FileRecord, 'capability' | 'selinux' | 'ima'>;

/**
 * Reads the security xattrs of the regular file `host` (a path on this machine). Returns what is
 * present, or a warning when they could not be read; a filesystem without xattrs has none.
 */
export function readSecurityXattrs(host: string, path: string): { xattrs?: SecurityXattrs; warning?: ScanWarning } {
  const x = xattrApi();
  if (x === null) return { warning: { code: 'XATTRS_UNAVAILABLE', message: `file capabilities and security labels are not read on this platform: ${loadError}` } };
  let names: string[];
  try {
    names = x.listAttributesSync(host);
  } catch (err) {
    const message = (err as Error).message;
    // os error 95/61: no xattrs on this filesystem, or none on this file.
    if (/os error (95|61)\b/.test(message)) return {};
    if (/os error 2\b/.test(message)) return {}; // vanished: the walk says so for its content
    return { warning: { code: 'XATTRS_UNREADABLE', path, message: `security xattrs not read: ${message}` } };
  }
  if (names.length === 0) return {};
  const out: SecurityXattrs = {};
  try {
    if (names.includes(CAPABILITY)) {
      const value = x.getAttributeSync(host, CAPABILITY);
      const cap = value ? decodeCapability(value) : null;
      if (cap) out.capability = cap;
      else if (value) return { xattrs: out, warning: { code: 'CAPABILITY_UNDECODABLE', path, message: `security.capability of ${value.length} bytes is not a capability set the kernel knows` } };
    }
    if (names.includes(SELINUX)) {
      const label = x.getAttributeSync(host, SELINUX)?.toString('utf8').replace(/\0+$/, '');
      if (label) out.selinux = label.slice(0, 4096);
    }
    if (names.includes(IMA)) {
      const value = x.getAttributeSync(host, IMA);
      if (value && value.length > 0) out.ima = value.subarray(0, IMA_MAX_BYTES).toString('hex');
    }
  } catch (err) {
    return { xattrs: out, warning: { code: 'XATTRS_UNREADABLE', path, message: `security xattrs not read: ${(err as Error).message}` } };
  }
  return { xattrs: out };
}
