import { apkCollector } from './apk.js';
import { cpanCollector } from './cpan.js';
import { dpkgCollector } from './dpkg.js';
import { gemCollector } from './gem.js';
import { npmCollector } from './npm.js';
import { pipCollector } from './pip.js';
import { rpmCollector } from './rpm.js';
import type { Collector } from './types.js';

/**
 * Every ecosystem the agent reads. Order matters for ownership: the first owner of a path wins,
 * so the OS package managers come first and a pip/gem/npm record they ship stays theirs.
 */
export const COLLECTORS: readonly Collector[] = [dpkgCollector, rpmCollector, apkCollector, pipCollector, gemCollector, cpanCollector, npmCollector];
