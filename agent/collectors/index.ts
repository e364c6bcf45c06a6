import { dpkgCollector } from './dpkg.js';
import type { Collector } from './types.js';

/** Every ecosystem the agent reads. Order matters only for ownership: the first owner wins. */
export const COLLECTORS: readonly Collector[] = [dpkgCollector];
