import { describe, expect, it } from 'vitest';
import { isQuicksandError } from '../../shared/errors.js';
import { secondsOption } from './run.js';

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
