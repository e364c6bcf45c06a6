import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { parseSudoLog, parseWtmp } from '../collect/host-records.js';
import type { HostRecords } from '../collect/host-records.js';
import { likelyActor } from './actor.js';

const now = new Date(2026, 11, 1, 14, 10, 0);
const at = (h: number, m: number, s: number): number => new Date(2026, 11, 1, h, m, s).getTime();

describe('sudo log lines', () => {
  it('reads sudo’s own logfile (continued lines) and syslog’s auth.log, and skips refusals (nothing ran)', () => {
    const logfile = 'Dec  1 14:01:58 : alice : TTY=pts/0 ; PWD=/home/alice ; USER=root ;\n    COMMAND=/usr/bin/vim /etc/ssh/sshd_config\n';
    expect(parseSudoLog(logfile, '/var/log/sudo.log', now)).toEqual([{ at: at(14, 1, 58), user: 'alice', command: '/usr/bin/vim /etc/ssh/sshd_config', tty: 'pts/0', source: '/var/log/sudo.log' }]);
    const auth = [
      'Dec  1 13:00:00 web sudo[812]:    bob : TTY=pts/1 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/id',
      'Dec  1 13:00:05 web sudo[813]:    eve : user NOT in sudoers ; TTY=pts/2 ; PWD=/ ; USER=root ; COMMAND=/bin/sh',
      '2026-12-01T13:05:00.123456+00:00 web sudo: carol : TTY=pts/3 ; PWD=/ ; USER=root ; COMMAND=/usr/bin/tee /etc/motd',
      'Dec  1 13:06:00 web sshd[1]: Accepted publickey for bob',
    ].join('\n');
    const got = parseSudoLog(auth, '/var/log/auth.log', now);
    expect(got.map((e) => [e.user, e.command])).toEqual([
      ['bob', '/usr/bin/id'],
      ['carol', '/usr/bin/tee /etc/motd'],
    ]);
    expect(got[1]!.at).toBe(Date.parse('2026-12-01T13:05:00.123Z'));
  });

  it('puts a date without a year in the past year when this one would be the future', () => {
    expect(new Date(parseSudoLog('Dec 31 23:00:00 : a : COMMAND=/x', 's', new Date(2027, 0, 1, 1))[0]!.at).getFullYear()).toBe(2026);
  });
});

describe('wtmp written by utmpdump -r', () => {
  it('gives sessions with their end', () => {
    const text = [
      '[7] [00100] [ts/0] [alice   ] [pts/0       ] [10.0.0.5            ] [10.0.0.5       ] [2026-12-01T14:00:00,000000+00:00]',
      '[8] [00100] [ts/0] [        ] [pts/0       ] [                    ] [0.0.0.0        ] [2026-12-01T14:30:00,000000+00:00]',
      '[7] [00200] [ts/1] [bob     ] [pts/1       ] [10.0.0.9            ] [10.0.0.9       ] [2026-12-01T14:05:00,000000+00:00]',
    ].join('\n');
    const wtmp = execFileSync('utmpdump', ['-r'], { input: `${text}\n`, stdio: ['pipe', 'pipe', 'ignore'] });
    expect(parseWtmp(wtmp, '/var/log/wtmp')).toEqual([
      { user: 'alice', line: 'pts/0', host: '10.0.0.5', start: Date.parse('2026-12-01T14:00:00Z'), end: Date.parse('2026-12-01T14:30:00Z'), source: '/var/log/wtmp' },
      { user: 'bob', line: 'pts/1', host: '10.0.0.9', start: Date.parse('2026-12-01T14:05:00Z'), source: '/var/log/wtmp' },
    ]);
  });
});

describe('likelyActor', () => {
  const records: HostRecords = {
    sudo: [
      { at: at(14, 1, 58), user: 'alice', command: '/usr/bin/vim /etc/ssh/sshd_config', tty: 'pts/0', source: '/var/log/auth.log' },
      { at: at(13, 0, 0), user: 'bob', command: '/usr/bin/id', source: '/var/log/auth.log' },
    ],
    sessions: [{ user: 'alice', line: 'pts/0', host: '10.0.0.5', start: at(13, 55, 0), source: '/var/log/wtmp' }],
  };

  it('takes the session open at the ctime and the sudo command naming the file', () => {
    const actor = likelyActor('/etc/ssh/sshd_config', at(14, 2, 11), records)!;
    expect(actor.user).toBe('alice');
    expect(actor.evidence.map((e) => e.text)).toEqual([
      'changed at 14:02:11',
      "during alice's session on pts/0 from 10.0.0.5 (since 13:55:00)",
      'at 14:01:58 alice ran `sudo /usr/bin/vim /etc/ssh/sshd_config` on pts/0',
    ]);
  });

  it('ignores a sudo command that names something else and is not within a minute', () => {
    expect(likelyActor('/etc/motd', at(13, 30, 0), { sudo: records.sudo, sessions: [] })).toBeUndefined();
    expect(likelyActor('/etc/motd', at(13, 0, 30), { sudo: records.sudo, sessions: [] })!.user).toBe('bob');
    // Within the minute, but about another file: not this change's.
    expect(likelyActor('/etc/issue', at(14, 2, 11), { sudo: records.sudo, sessions: [] })).toBeUndefined();
  });
});
