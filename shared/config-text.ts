// The text of small config files, carried in the manifest and in findings so the server can show
// a diff of what changed. Names and bounds only (no zod), so the hot paths that check records by
// hand hold the same numbers as the schemas. Pure.

/** The hard upper bound of one file's text anywhere (manifest, report); the policy's cap is at most this. */
export const MAX_CONFIG_TEXT_CHARS = 256 * 1024;
/** The hard upper bound of the policy's total over a manifest. */
export const MAX_CONFIG_TEXT_TOTAL = 64 * 1024 * 1024;
/**
 * What one report may carry in config text (before and after of every finding together): well
 * under the frame limit (8 MiB) with room for the rest of the report.
 */
export const REPORT_CONFIG_TEXT_BUDGET = 2 * 1024 * 1024;

/** Defaults of the policy's `configText` (docs/detection.md "Config text"). */
export const DEFAULT_CONFIG_TEXT = {
  /** Folders whose small text files the manifest carries. */
  paths: ['/etc'],
  /** Per file, in bytes of the file on disk. */
  maxFileBytes: 64 * 1024,
  /** Over the whole manifest, in bytes of the files on disk: a large host's /etc holds a few MiB. */
  maxTotalBytes: 8 * 1024 * 1024,
  /**
   * Files that are secret as a whole, never carried as text even masked (globs, as the policy's
   * others). Files holding a PEM private key are treated the same wherever they are.
   */
  secret: [
    '/etc/shadow',
    '/etc/shadow-',
    '/etc/gshadow',
    '/etc/gshadow-',
    '/etc/security/opasswd',
    '/etc/ssh/ssh_host_*_key',
    '/etc/ssl/private',
    '/etc/pki/tls/private',
    '/etc/letsencrypt/archive',
    '/etc/letsencrypt/keys',
    '/etc/letsencrypt/live/*/privkey*.pem',
    '/etc/krb5.keytab',
    '/etc/ipsec.secrets',
    '/etc/ppp/chap-secrets',
    '/etc/ppp/pap-secrets',
    '/etc/NetworkManager/system-connections',
    '/etc/wireguard',
    '/etc/**/*.key',
  ],
} as const;

/** Why a file of the config paths has no text: what the manifest or the finding says instead. */
export const TEXT_OMISSIONS = ['too-large', 'budget', 'binary', 'secret', 'unreadable', 'not-in-manifest'] as const;
export type TextOmission = (typeof TEXT_OMISSIONS)[number];

/** The policy's `configText`, resolved (absent fields take DEFAULT_CONFIG_TEXT's). */
export interface ConfigTextPolicy {
  paths: string[];
  maxFileBytes: number;
  maxTotalBytes: number;
  secret: string[];
}

export function configTextPolicy(given: Partial<ConfigTextPolicy> | undefined): ConfigTextPolicy {
  return { paths: [...DEFAULT_CONFIG_TEXT.paths], maxFileBytes: DEFAULT_CONFIG_TEXT.maxFileBytes, maxTotalBytes: DEFAULT_CONFIG_TEXT.maxTotalBytes, secret: [...DEFAULT_CONFIG_TEXT.secret], ...given };
}

/** A sentence for an omission, as the finding (and so the console) says it. */
export function omissionMessage(reason: TextOmission, detail: { size?: number | undefined; maxFileBytes?: number; maxTotalBytes?: number; side?: 'image' | 'host' } = {}): string {
  const whose = detail.side === 'image' ? "the image's copy" : detail.side === 'host' ? "the host's copy" : 'the file';
  switch (reason) {
    case 'too-large':
      return `no text: ${whose} is ${detail.size ?? 'over'} bytes, over the policy's cap of ${detail.maxFileBytes ?? DEFAULT_CONFIG_TEXT.maxFileBytes} bytes per file`;
    case 'budget':
      return detail.side === 'image'
        ? `no text: the manifest's config text reached the policy's total cap of ${detail.maxTotalBytes ?? DEFAULT_CONFIG_TEXT.maxTotalBytes} bytes before this file`
        : `no text: the report's config text reached its cap of ${REPORT_CONFIG_TEXT_BUDGET} bytes before this file`;
    case 'binary':
      return `no text: ${whose} is not text (not UTF-8, or holds NUL or control bytes)`;
    case 'secret':
      return `no text: ${whose} holds secrets as a whole (the policy's secret files, or a private key) and is never carried`;
    case 'unreadable':
      return `no text: ${whose} could not be read`;
    case 'not-in-manifest':
      return 'no text: the manifest holds no text of this file (made before config text, or from a package list)';
  }
}
