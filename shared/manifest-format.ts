// The manifest's names, without its schema: what building, walking and diffing need, so the
// commands that never read a manifest from outside (building one, say) do not load zod.
export const MANIFEST_SCHEMA = 'quicksand.manifest/v1';

export const FILE_TYPES = ['file', 'dir', 'symlink', 'fifo', 'socket', 'char', 'block'] as const;
export type FileType = (typeof FILE_TYPES)[number];

/** Key that identifies a path byte-exactly, also when its name is not valid UTF-8. */
export function pathKey(record: { path: string; rawPath?: string | undefined }): string {
  return record.rawPath === undefined ? record.path : `b64:${record.rawPath}`;
}
