import { describe, expect, it } from 'vitest';
import { isQuicksandError } from '../../shared/errors.js';
import { FULL_SCAN_THREADS, containerScanArgs, fullScanArgs, secondsOption } from './run.js';

describe('options given in seconds', () => {
  it('are milliseconds inside, the default included', () => {
    // The default was once returned as it stood: a 30 s heartbeat became one every 30 ms.
    expect(secondsOption(undefined, '--heartbeat', 30)).toBe(30_000);
    expect(secondsOption('2.5', '--heartbeat', 30)).toBe(2_500);
  });

  it('refuse what is not a positive number, naming the option', () => {
    for (const bad of ['0', '-1', 'soon', '']) {
      let err: unknown;
      try {
        secondsOption(bad, '--reconnect-max', 300);
      } catch (e) {
        err = e;
      }
      expect(isQuicksandError(err) && err.code === 'USAGE' && err.message.startsWith('--reconnect-max: expected a number of seconds')).toBe(true);
    }
  });
});

describe("the full scan child's container options", () => {
  it('pass --containers and its two options through to every scheduled scan', () => {
    expect(containerScanArgs({})).toEqual([]);
    expect(containerScanArgs({ containers: true })).toEqual(['--containers']);
    expect(containerScanArgs({ containers: true, 'image-check-hours': '0', 'manifest-timeout': '2.5' })).toEqual(['--containers', '--image-check-hours', '0', '--manifest-timeout', '2.5']);
  });

  it('refuse a bad value when the daemon starts, naming the option, and the options without --containers', () => {
    const usage = (args: Parameters<typeof containerScanArgs>[0]): string => {
      try {
        containerScanArgs(args);
      } catch (e) {
        if (isQuicksandError(e) && e.code === 'USAGE') return e.message;
      }
      return 'accepted';
    };
    expect(usage({ containers: true, 'image-check-hours': '-1' })).toBe('--image-check-hours: expected a non-negative number, got "-1"');
    expect(usage({ containers: true, 'manifest-timeout': 'soon' })).toBe('--manifest-timeout: expected a non-negative number, got "soon"');
    expect(usage({ containers: true, 'manifest-timeout': '' })).toBe('--manifest-timeout: expected a non-negative number, got ""');
    expect(usage({ 'image-check-hours': '24' })).toBe('--image-check-hours applies to containers only: add --containers');
  });
});

describe("the full scan child's threads", () => {
  it('are one unless run --threads says, and come before the container options', () => {
    expect(FULL_SCAN_THREADS).toBe(1);
    expect(fullScanArgs({})).toEqual(['--threads', '1']);
    expect(fullScanArgs({ threads: '2', containers: true })).toEqual(['--threads', '2', '--containers']);
  });

  it('refuse a count outside 1-64 when the daemon starts, saying what to pass', () => {
    for (const bad of ['0', '65', 'many']) {
      let err: unknown;
      try {
        fullScanArgs({ threads: bad });
      } catch (e) {
        err = e;
      }
      expect(isQuicksandError(err) && err.code === 'USAGE' && err.message).toBe(`--threads expects a whole number from 1 to 64, not "${bad}" (1 holds the least memory; leave it out for the daemon's default of 1)`);
    }
  });
});
