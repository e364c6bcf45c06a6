// The agent fetches the manifest uploaded for a container image its containers run (GET
// /api/v1/agent/image-manifest): the image's truth instead of its layers as first read here.
import { isQuicksandError } from '../../shared/errors.js';
import type { ImageManifestSource } from '../containers/scan-containers.js';
import { parseImageManifest } from '../containers/image-manifest.js';
import type { AgentConfig } from '../../shared/protocol.js';
import { call } from './server-baseline.js';

export function imageManifestSource(config: AgentConfig): ImageManifestSource {
  return async ({ ref, id }, signal) => {
    const route = `/api/v1/agent/image-manifest?${new URLSearchParams({ name: ref, version: id }).toString()}`;
    try {
      return parseImageManifest(await call(config, 'GET', route, undefined, signal), `${config.server} manifest of image ${ref} ${id}`);
    } catch (err) {
      if (isQuicksandError(err) && err.code === 'NOT_FOUND') return null;
      throw err;
    }
  };
}
