import type { ContainerReport, ScanWarning } from '../../shared/report.js';

/** A container found on the host's disk, with the layer folders that make its filesystem. */
export interface DiscoveredContainer {
  runtime: ContainerReport['runtime'];
  id: string;
  name?: string;
  /** `ref`: the name:tag it was started from; `id`: the image id or digest (`sha256:…`). */
  image: { ref?: string; id?: string };
  state: 'running' | 'stopped' | 'unknown';
  /** Host path of the writable layer. */
  upper: string;
  /** Host paths of the layers below it, top first (Docker's `-init` layer included). */
  lowers: string[];
  /** The image's own layers among `lowers` (without per-container layers such as Docker's init). */
  imageLowers: string[];
  warnings?: ScanWarning[];
}

export interface Discovery {
  containers: DiscoveredContainer[];
  warnings: ScanWarning[];
}
