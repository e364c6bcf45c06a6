import { describe, expect, it } from 'vitest';
import { MASK, isSecretKey, maskSecrets, textOf } from './config-text.js';

describe('maskSecrets', () => {
  it('masks the value of lines that set a password, secret, token or key, and keeps the key', () => {
    const text = [
      'password=hunter2',
      'db_password = hunter2',
      'PASS hunter2',
      'key: hunter2',
      'Token hunter2',
      'export API_TOKEN="hunter2"',
      '  client_secret: "hunter2"',
      '# password=hunter2',
      '"apiKey": "hunter2",',
      '- secret: hunter2',
      'HostKey /etc/ssh/ssh_host_ed25519_key',
      '<password>hunter2</password>',
      'url = https://deploy:hunter2@git.example.org/repo.git',
      'wpa_psk=hunter2',
      '',
    ].join('\n');
    const masked = maskSecrets(text);
    expect(masked).not.toContain('hunter2');
    expect(masked.split('\n')).toEqual([
      `password=${MASK}`,
      `db_password = ${MASK}`,
      `PASS ${MASK}`,
      `key: ${MASK}`,
      `Token ${MASK}`,
      `export API_TOKEN=${MASK}`,
      `  client_secret: ${MASK}`,
      `# password=${MASK}`,
      `"apiKey": ${MASK}`,
      `- secret: ${MASK}`,
      `HostKey ${MASK}`,
      `<password>${MASK}</password>`,
      `url = https://deploy:${MASK}@git.example.org/repo.git`,
      `wpa_psk=${MASK}`,
      '',
    ]);
  });

  it('leaves settings that only mention such a word, and directives of several words', () => {
    const text = [
      'PasswordAuthentication no',
      'PubkeyAuthentication yes',
      'AuthorizedKeysFile .ssh/authorized_keys',
      'PASS_MAX_DAYS 99999',
      'monkey=banana',
      'bypass=1',
      'password\trequisite\tpam_pwquality.so retry=3',
      '# The key is read at start',
    ].join('\n');
    expect(maskSecrets(text)).toBe(text);
  });

  it('masks the password of a URL in a text that names no secret, and leaves a text without either as it is', () => {
    expect(maskSecrets('mirror = https://deploy:hunter2@example.org/debian\nmode = fast\n')).toBe(`mirror = https://deploy:${MASK}@example.org/debian\nmode = fast\n`);
    const plain = 'mode = fast\n<name>web</name>\n  retries: 3\n';
    expect(maskSecrets(plain)).toBe(plain);
  });

  it('tells secret keys from look-alikes', () => {
    expect(['password', 'DB_PASS', 'apiToken', 'HostKey', 'secret.key', 'credentials', 'APIKEY'].every(isSecretKey)).toBe(true);
    expect(['PasswordAuthentication', 'monkey', 'Keyboard', 'passage', 'compass', 'tokens_per_day'].some(isSecretKey)).toBe(false);
  });
});

describe('textOf', () => {
  it('gives the masked text of UTF-8 text, and refuses binary and private keys', () => {
    expect(textOf(Buffer.from('name=café\npassword=x\n'))).toEqual({ text: `name=café\npassword=${MASK}\n` });
    expect(textOf(Buffer.from([0x61, 0x00, 0x62]))).toEqual({ omitted: 'binary' });
    expect(textOf(Buffer.from([0xff, 0xfe, 0x41]))).toEqual({ omitted: 'binary' });
    expect(textOf(Buffer.from('a\u0001b\u0002c'))).toEqual({ omitted: 'binary' });
    expect(textOf(Buffer.from('-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n'))).toEqual({ omitted: 'secret' });
  });
});
