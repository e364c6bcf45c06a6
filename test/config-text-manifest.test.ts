// Config text and the manifest file format: a manifest made before config text still loads and
// scans (its changed config files say the manifest holds no text of them), the policy's caps in
// a manifest are the ones a scan honours, and a text field past its bound is refused by name.
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readManifestFile, writeManifestFile } from '../agent/manifest/io.js';
import { openManifestSource } from '../agent/manifest/stream.js';
import { scanRoot, scanSource } from '../agent/diff/scan.js';
import { openRoot } from '../agent/root.js';
import { MAX_CONFIG_TEXT_CHARS } from '../shared/config-text.js';
import type { Manifest } from '../shared/manifest.js';
import { makeTinyRoot } from './helpers/tiny-root.js';
import type { TinyRoot } from './helpers/tiny-root.js';

let tiny: TinyRoot | undefined;
afterEach(() => tiny?.remove());

const motdText = async (root: string, manifest: Manifest) =>
  (await scanRoot(await openRoot(root), manifest)).findings.find((f) => f.path === '/etc/motd')?.text;

describe('config text in the manifest file', () => {
  it('a manifest without text (older agents) still loads, and a changed config file says why it has no diff', async () => {
    tiny = makeTinyRoot();
    const made = await readManifestFile(tiny.manifest);
    expect(made.files.find((f) => f.path === '/etc/motd')!.text).toBe('welcome\n');
    const older = path.join(tiny.dir, 'older.json');
    await writeManifestFile(older, { ...made, files: made.files.map(({ text: _t, noText: _n, ...f }) => f) });
    writeFileSync(path.join(tiny.root, 'etc/motd'), 'welcome back\n');
    expect(await motdText(tiny.root, await readManifestFile(older))).toEqual({
      omitted: 'not-in-manifest',
      why: 'no text: the manifest holds no text of this file (made before config text, or from a package list)',
    });
    expect(await motdText(tiny.root, made)).toEqual({ before: 'welcome\n', after: 'welcome back\n' });
  });

  it("honours the caps of the manifest's policy on the host side", async () => {
    tiny = makeTinyRoot();
    const made = await readManifestFile(tiny.manifest);
    writeFileSync(path.join(tiny.root, 'etc/motd'), 'welcome back\n');
    expect(await motdText(tiny.root, { ...made, policy: { ...made.policy, configText: { maxFileBytes: 4 } } })).toEqual({
      omitted: 'too-large',
      why: "no text: the host's copy is 13 bytes, over the policy's cap of 4 bytes per file",
    });
    expect(await motdText(tiny.root, { ...made, policy: { ...made.policy, configText: { paths: ['/srv'] } } })).toBeUndefined();
  });

  it('refuses a streamed manifest whose record text is over its bound, naming the line and field', async () => {
    tiny = makeTinyRoot();
    const lines = readFileSync(tiny.manifest, 'utf8').split('\n');
    const at = lines.findIndex((l) => l.includes('"/etc/motd"'));
    lines[at] = lines[at]!.replace('"text":"welcome\\n"', `"text":"${'x'.repeat(MAX_CONFIG_TEXT_CHARS + 1)}"`);
    writeFileSync(tiny.manifest, lines.join('\n'));
    const source = await openManifestSource(tiny.manifest);
    await expect(scanSource(await openRoot(tiny.root), source)).rejects.toMatchObject({
      code: 'MANIFEST_INVALID',
      message: expect.stringMatching(new RegExp(`line ${at + 1}:\\ntext: at most ${MAX_CONFIG_TEXT_CHARS} characters`)),
    });
  });
});
