/**
 * Image references as the runtimes spell them, made comparable: Docker keeps what was typed
 * (`debian:bookworm`), containerd and CRI the full name (`docker.io/library/debian:bookworm`).
 * Docker's normalization (distribution/reference ParseNormalizedNamed): a first component with
 * no `.` or `:` that is not `localhost` is a Docker Hub path (`docker.io/`), a one-component Hub
 * path is an official image (`library/`), and a name with neither tag nor digest is `:latest`.
 * Pure; anything it cannot read is returned as it is.
 */
export function normalizeImageRef(ref: string): string {
  let name = ref.trim();
  let digest = '';
  const at = name.indexOf('@');
  if (at !== -1) {
    digest = name.slice(at);
    name = name.slice(0, at);
  }
  const slash = name.indexOf('/');
  const first = slash === -1 ? '' : name.slice(0, slash);
  if (slash === -1 || (!first.includes('.') && !first.includes(':') && first !== 'localhost')) name = `docker.io/${name}`;
  if (name.startsWith('docker.io/') && !name.slice('docker.io/'.length).includes('/')) name = `docker.io/library/${name.slice('docker.io/'.length)}`;
  const lastPart = name.slice(name.lastIndexOf('/') + 1);
  if (!lastPart.includes(':') && digest === '') name = `${name}:latest`;
  return `${name}${digest}`;
}

/**
 * Whether a container of image `ref` / `id` answers the query `image`: the same reference once
 * normalized, the same image id, or an id given by its first 12 or more hex digits.
 */
export function imageMatches(image: string, ref: string | null, id: string | null): boolean {
  if (ref !== null && (ref === image || normalizeImageRef(ref) === normalizeImageRef(image))) return true;
  if (id === null) return false;
  if (id === image) return true;
  const hex = image.replace(/^sha256:/, '');
  return /^[0-9a-f]{12,64}$/.test(hex) && id.replace(/^sha256:/, '').startsWith(hex);
}
