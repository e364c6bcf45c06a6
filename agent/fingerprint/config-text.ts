// The text of small config files (the policy's `configText`), secrets masked, for the manifest and
// for the findings of a changed one, so the server can show what changed. The masking and the
// text test are pure; `createConfigTextReader` reads, relative to a root, never following a link.
import { closeSync, constants as C, fstatSync, openSync, readSync } from 'node:fs';
import { configTextPolicy, omissionMessage, REPORT_CONFIG_TEXT_BUDGET } from '../../shared/config-text.js';
import type { TextOmission } from '../../shared/config-text.js';
import { compileGlobs, isUnder } from '../../shared/policy.js';
import type { Policy } from '../../shared/policy.js';
import type { FileRecord } from '../../shared/manifest.js';
import type { ConfigText, Finding } from '../../shared/report.js';
import type { Root } from '../root.js';

/** What a masked value is shown as. */
export const MASK = '********';

// A key ends in one of these (as a whole, after `_ - .`, or as a camelCase word): its value is a secret.
const SECRET_WORD = /(apikey|password|passwd|passphrase|pass|pwd|secret|token|key|psk|credentials?)$/i;
// Indent, a comment mark, a YAML list dash, `export`, an optional quote; the key; the separator; the value.
const SETTING = /^(\s*(?:[#;]+\s*)?(?:-\s+)?(?:export\s+)?["']?)([A-Za-z0-9_.-]+)(["']?)(\s*[:=]\s*|\s+)(.*)$/;
const URL_CREDENTIALS = /(\b[a-z][a-z0-9+.-]*:\/\/[^\s/:@]+:)[^\s/@]+@/gi;
const XML_ELEMENT = /<([A-Za-z0-9_.:-]+)>[^<]+<\/\1>/g;
const ONE_TOKEN = /^(?:"[^"]*"|'[^']*'|\S+)\s*$/;
// A line can only be masked by key when it holds one of SECRET_WORD's words (a key ends in one,
// an element's name too): each of them contains one of these.
const SECRETISH = /pass|pwd|secret|token|key|psk|credential/i;

/** True for a key that names a secret: `password`, `DB_PASS`, `apiToken`, `HostKey`; not `PasswordAuthentication` or `monkey`. */
export function isSecretKey(name: string): boolean {
  const m = SECRET_WORD.exec(name);
  if (m === null) return false;
  if (m.index === 0) return true;
  const before = name[m.index - 1]!;
  if (before === '_' || before === '-' || before === '.') return true;
  const first = name[m.index]!;
  return first !== first.toLowerCase() && /[a-z0-9]/.test(before);
}

/**
 * The text with the value of every line that sets a password, secret, token or key replaced by
 * MASK, the key kept so a diff still says which setting changed: `password=…`, `PASS …`,
 * `key: …`, `Token …`, `export API_TOKEN=…`, `"secret": …`, `<password>…</password>`, and the
 * password of a URL (`https://user:…@host`). A key followed by several words without `=` or `:`
 * (`password required pam_unix.so`) is a directive, not a secret, and stays. Pure.
 */
export function maskSecrets(text: string): string {
  // Most config files and lines name no secret and hold no URL: they pass as they are, without
  // the three expressions per line (on the minbase's 91 config texts, most of their cost).
  if (!SECRETISH.test(text) && !text.includes('://')) return text;
  return text
    .split('\n')
    .map((line) => {
      if (!SECRETISH.test(line)) return line.includes('://') ? line.replace(URL_CREDENTIALS, `$1${MASK}@`) : line;
      let out = line;
      const m = SETTING.exec(line);
      if (m !== null && isSecretKey(m[2]!) && m[5]!.trim() !== '' && (m[4]!.trim() !== '' || ONE_TOKEN.test(m[5]!))) out = `${m[1]}${m[2]}${m[3]}${m[4]}${MASK}`;
      out = out.replace(XML_ELEMENT, (whole, tag: string) => (isSecretKey(tag.replace(/^.*:/, '')) ? `<${tag}>${MASK}</${tag}>` : whole));
      return out.replace(URL_CREDENTIALS, `$1${MASK}@`);
    })
    .join('\n');
}

const PRIVATE_KEY = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;
// Fatal: bytes that are not UTF-8 throw, and the file is binary. Each decode starts afresh.
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The masked text of a file's bytes, or why it has none: not UTF-8, a NUL, or more than one
 * character in a hundred a control character (binary); a PEM private key anywhere (secret). Pure.
 */
export function textOf(bytes: Uint8Array): { text: string } | { omitted: 'binary' | 'secret' } {
  let text: string;
  try {
    text = UTF8.decode(bytes);
  } catch {
    return { omitted: 'binary' };
  }
  let controls = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0) return { omitted: 'binary' };
    if ((c < 32 && c !== 9 && c !== 10 && c !== 13 && c !== 12) || c === 127) controls++;
  }
  if (controls * 100 > text.length) return { omitted: 'binary' };
  if (PRIVATE_KEY.test(text)) return { omitted: 'secret' };
  return { text: maskSecrets(text) };
}

/** `notFile`: a link, folder or device: it has no text to carry and no reason to give. */
export type TextRead = { text: string } | { omitted: TextOmission; size?: number } | { notFile: true };

export interface ConfigTextReader {
  /** Whether `path` is one whose text is carried (under the policy's config paths). */
  covers(path: string): boolean;
  /** The masked text of the regular file at `path` inside the root, or why there is none. */
  read(path: string): Promise<TextRead>;
  /** Gives the manifest records of the config paths their text (or why none), within the total cap. */
  fillRecords(records: FileRecord[]): Promise<void>;
  /** Gives the file findings of the config paths their text before and after, within the report's budget. */
  fillFindings(findings: Finding[], before: (path: string) => FileRecord | undefined): Promise<void>;
}

export function createConfigTextReader(root: Root, policy: Policy): ConfigTextReader {
  const cfg = configTextPolicy(policy.configText);
  const secret = compileGlobs(cfg.secret);
  const covers = (path: string): boolean => cfg.paths.some((dir) => isUnder(path, dir));
  let manifestLeft = cfg.maxTotalBytes;

  // Synchronous reads into one buffer: a config file is small and mostly in the page cache, and
  // each asynchronous step (open, stat, read, close) was a round trip through libuv's pool, four
  // or five per file while the manifest's pipeline waited on them one file after another.
  let scratch: Buffer | undefined;
  function readNow(path: string): TextRead {
    if (secret(path)) return { omitted: 'secret' };
    let fd: number | undefined;
    try {
      // O_NOFOLLOW: a link is never read through; O_NONBLOCK: a FIFO put in its place never blocks.
      fd = openSync(root.hostPath(path), C.O_RDONLY | C.O_NOFOLLOW | C.O_NONBLOCK);
      const st = fstatSync(fd);
      if (!st.isFile()) return { notFile: true };
      if (st.size > cfg.maxFileBytes) return { omitted: 'too-large', size: st.size };
      // textOf copies what it keeps into a string: the buffer serves the next file.
      scratch ??= Buffer.allocUnsafe(cfg.maxFileBytes + 1);
      let got = 0;
      for (;;) {
        const bytesRead = readSync(fd, scratch, got, scratch.length - got, got);
        if (bytesRead === 0) break;
        got += bytesRead;
        if (got > cfg.maxFileBytes) return { omitted: 'too-large', size: got };
      }
      return textOf(scratch.subarray(0, got));
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ELOOP' ? { notFile: true } : { omitted: 'unreadable' };
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
  }
  const read = async (path: string): Promise<TextRead> => readNow(path);

  return {
    covers,
    read,
    async fillRecords(records) {
      for (const r of records) {
        if (r.type !== 'file' || r.rawPath !== undefined || !covers(r.path)) continue;
        if (r.size !== undefined && r.size > cfg.maxFileBytes) {
          r.noText = 'too-large';
          continue;
        }
        if (!secret(r.path) && (r.size ?? 0) > manifestLeft) {
          r.noText = 'budget';
          continue;
        }
        const got = readNow(r.path);
        if ('text' in got) {
          manifestLeft -= r.size ?? Buffer.byteLength(got.text);
          r.text = got.text;
        // Why this host could not read a file is a warning of the walk, not part of the image.
        } else if ('omitted' in got && got.omitted !== 'unreadable') r.noText = got.omitted;
      }
    },
    async fillFindings(findings, before) {
      let left = REPORT_CONFIG_TEXT_BUDGET;
      const omitted = (reason: TextOmission, side: 'image' | 'host', size?: number): ConfigText => ({
        omitted: reason,
        why: omissionMessage(reason, { size, maxFileBytes: cfg.maxFileBytes, maxTotalBytes: cfg.maxTotalBytes, side }),
      });
      const textFor = async (f: Finding): Promise<ConfigText | undefined> => {
        const sides = f.kind === 'file-modified' ? ['before', 'after'] : f.kind === 'file-added' ? ['after'] : f.kind === 'file-removed' ? ['before'] : [];
        if (sides.length === 0 || f.path === undefined || f.rawPath !== undefined || !covers(f.path)) return undefined;
        const out: { before?: string; after?: string } = {};
        if (sides.includes('before')) {
          const was = before(f.path);
          if (was !== undefined && was.type !== 'file') return undefined;
          if (was?.text !== undefined) out.before = was.text;
          else return was?.noText === undefined ? omitted('not-in-manifest', 'image') : omitted(was.noText, 'image', was.size);
        }
        if (sides.includes('after')) {
          const now = await read(f.path);
          if ('notFile' in now) return undefined;
          if ('omitted' in now) return omitted(now.omitted, 'host', now.size);
          out.after = now.text;
        }
        const size = (out.before?.length ?? 0) + (out.after?.length ?? 0);
        if (size > left) return omitted('budget', 'host');
        left -= size;
        return out;
      };
      // Most severe first (the report's order): the budget goes to what matters most.
      const visit = async (list: Finding[]): Promise<void> => {
        for (const f of list) {
          const text = await textFor(f);
          if (text !== undefined) f.text = text;
          if (f.changes !== undefined) await visit(f.changes);
        }
      };
      await visit(findings);
    },
  };
}
