import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { Command } from 'commander';
import { ValidationError } from '../../src/lib/errors.js';
import {
  addSettingOptions,
  defaultOf,
  describeSettings,
  envNameOf,
  flagName,
  flagValues,
  HELP_WIDTH,
  readSettingsFile,
  resolveSettings,
  SettingsError,
  type SettingsTable,
  withSetting,
  wrapText,
} from '../../src/lib/settings/index.js';

const TABLE: SettingsTable = {
  envPrefix: 'T_',
  emptyEnv: 'unset',
  settings: [
    { key: 'serverUrl', kind: 'url', def: 'https://a.example/', describe: 'where the server is' },
    { key: 'retryCount', kind: 'int', def: 3, min: 1, describe: 'retries' },
    { key: 'portNumber', kind: 'int', def: 80, min: 1, max: 65535, describe: 'a port' },
    { key: 'verbose', kind: 'bool', def: false, describe: 'say more' },
    { key: 'peers', kind: 'list', def: [], describe: 'peer addresses (comma list)' },
    { key: 'listen', kind: 'listen', def: '127.0.0.1:9000', describe: 'host:port or off' },
    { key: 'mode', kind: 'enum', choices: ['fast', 'safe'], def: 'safe', describe: 'how' },
    { key: 'password', kind: 'secret', describe: 'a secret' },
    { key: 'dataDir', kind: 'path', absolute: true, def: '/var/x', describe: 'where data lives' },
    { key: 'nic', kind: 'ifname', def: 'eth0', describe: 'interface' },
    { key: 'sourceIp', kind: 'ip', def: '', emptyOk: true, describe: "source address; '' = any" },
    { key: 'name', kind: 'string', required: true, describe: 'a name nobody can guess for us' },
  ],
};

const NAME = { name: 'n' };

function settingsError(fn: () => unknown): SettingsError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof SettingsError, String(e));
    assert.equal(e.code, 'CFNET_SETTINGS');
    return e;
  }
  assert.fail('expected a SettingsError');
}

describe('settings engine (lib/settings)', () => {
  it('derives the flag and the environment variable from the key', () => {
    assert.equal(flagName('serverUrl'), '--server-url');
    assert.equal(envNameOf('T_', 'serverUrl'), 'T_SERVER_URL');
    assert.equal(defaultOf(TABLE, 'retryCount'), 3);
    assert.throws(() => defaultOf(TABLE, 'password'));
  });

  it('fills every default, and a default passes the same coercion as a given value', () => {
    const { values, from } = resolveSettings(TABLE, { file: NAME });
    assert.equal(values.serverUrl, 'https://a.example', 'a base URL loses its trailing slash');
    assert.equal(values.retryCount, 3);
    assert.deepEqual(values.peers, []);
    assert.deepEqual(values.listen, { host: '127.0.0.1', port: 9000 });
    assert.equal('password' in values, false, 'an unset optional setting is absent');
    assert.equal(from.retryCount, 'default');
    assert.equal(from.name, 'config file');
  });

  it('precedence: default < config file < environment < flag', () => {
    const file = { ...NAME, retryCount: 4 };
    const env = { T_RETRY_COUNT: '5' };
    const flags = { retryCount: '6' };
    assert.equal(resolveSettings(TABLE, { file }).values.retryCount, 4);
    assert.equal(resolveSettings(TABLE, { file, env }).values.retryCount, 5);
    const r = resolveSettings(TABLE, { file, env, flags });
    assert.equal(r.values.retryCount, 6);
    assert.equal(r.from.retryCount, 'flag --retry-count');
  });

  it('an empty environment variable is unset or a value, as the table says', () => {
    const env = { T_SOURCE_IP: '', T_RETRY_COUNT: '' };
    const unset = resolveSettings(TABLE, { file: { ...NAME, sourceIp: '10.0.0.1' }, env });
    assert.equal(unset.values.sourceIp, '10.0.0.1');
    assert.equal(unset.values.retryCount, 3);
    const asValue: SettingsTable = { ...TABLE, emptyEnv: 'value' };
    const given = resolveSettings(asValue, {
      file: { ...NAME, sourceIp: '10.0.0.1' },
      env: { T_SOURCE_IP: '' },
    });
    assert.equal(given.values.sourceIp, '', "'' is a value of an emptyOk setting");
    const e = settingsError(() => resolveSettings(asValue, { file: NAME, env: { T_RETRY_COUNT: '' } }));
    assert.equal(e.key, 'retryCount');
  });

  it('coerces strings from the environment and flags to the kind', () => {
    const env = {
      T_VERBOSE: 'yes',
      T_PEERS: ' a:1, b:2 ,,',
      T_LISTEN: 'off',
      T_PORT_NUMBER: ' 443 ',
      T_MODE: 'fast',
      T_SOURCE_IP: ' 10.1.2.3 ',
    };
    const { values } = resolveSettings(TABLE, { file: NAME, env });
    assert.equal(values.verbose, true);
    assert.deepEqual(values.peers, ['a:1', 'b:2']);
    assert.equal(values.listen, null);
    assert.equal(values.portNumber, 443);
    assert.equal(values.mode, 'fast');
    assert.equal(values.sourceIp, '10.1.2.3');
    const file = { ...NAME, peers: ['x', ' y '], verbose: false };
    assert.deepEqual(resolveSettings(TABLE, { file }).values.peers, ['x', 'y']);
    assert.deepEqual(resolveSettings(TABLE, { file: { ...NAME, peers: 'a,b' } }).values.peers, ['a', 'b']);
  });

  it('accepts snake_case keys in the config file and ignores null values', () => {
    const { values } = resolveSettings(TABLE, { file: { name: 'n', retry_count: 9, mode: null } });
    assert.equal(values.retryCount, 9);
    assert.equal(values.mode, 'safe');
  });

  it('a flag written without its value is the empty value (and true for a bool)', () => {
    const { values } = resolveSettings(TABLE, { file: NAME, flags: { verbose: true, listen: true } });
    assert.equal(values.verbose, true);
    assert.equal(values.listen, null);
  });

  it('each error names the setting, its flag and variable, the value and where it came from', () => {
    const cases: [Parameters<typeof resolveSettings>[1], string, RegExp][] = [
      [
        { file: { ...NAME, retryCount: 0 } },
        'retryCount',
        /retryCount \(--retry-count \/ T_RETRY_COUNT\) 0 from config file: must be at least 1/,
      ],
      [
        { file: NAME, env: { T_PORT_NUMBER: '70000' } },
        'portNumber',
        /70000 from env T_PORT_NUMBER: must be in 1\.\.65535/,
      ],
      [
        { file: NAME, flags: { retryCount: 'x' } },
        'retryCount',
        /"x" from flag --retry-count: must be an integer/,
      ],
      [{ file: NAME, env: { T_VERBOSE: 'maybe' } }, 'verbose', /must be true or false/],
      [{ file: NAME, env: { T_SERVER_URL: 'ftp://h' } }, 'serverUrl', /must be an absolute URL/],
      [{ file: NAME, env: { T_LISTEN: 'nowhere' } }, 'listen', /must be host:port/],
      [{ file: NAME, env: { T_MODE: 'slow' } }, 'mode', /must be one of fast, safe/],
      [{ file: NAME, env: { T_DATA_DIR: 'rel/dir' } }, 'dataDir', /must be an absolute path/],
      [{ file: NAME, env: { T_NIC: 'a-very-long-interface-name' } }, 'nic', /interface name/],
      [{ file: NAME, env: { T_SOURCE_IP: '10.0.0' } }, 'sourceIp', /IPv4/],
      [{ file: { ...NAME, peers: 7 } }, 'peers', /must be a comma-separated list/],
      [{ file: {} }, 'name', /name \(--name \/ T_NAME\) is required/],
      [{ file: { ...NAME, nmae: 1 } }, 'nmae', /unknown setting "nmae" in the config file/],
    ];
    for (const [sources, key, message] of cases) {
      const e = settingsError(() => resolveSettings(TABLE, sources));
      assert.equal(e.key, key, String(e.message));
      assert.match(e.message, message);
    }
  });

  it('never shows a secret in an error or a description', () => {
    const table: SettingsTable = {
      ...TABLE,
      settings: [...TABLE.settings, { key: 'pin', kind: 'secret', describe: 'a pin' }],
    };
    const resolved = resolveSettings(table, { file: { ...NAME, pin: 'hunter2-hunter2' } });
    assert.equal(resolved.values.pin, 'hunter2-hunter2');
    const e = settingsError(() => resolveSettings(table, { file: { ...NAME, pin: 42 } }));
    assert.doesNotMatch(e.message, /42/);
    assert.match(e.message, /\[redacted\]/);
    const shown = describeSettings(table, {
      ...resolved.values,
      pin: 'hunter2-hunter2',
      serverUrl: 'https://user:pw@a.example',
    });
    assert.equal(shown.pin, '[redacted]');
    assert.doesNotMatch(JSON.stringify(shown), /hunter2|pw@/);
    assert.equal(shown.retryCount, 3);
  });

  it('a table-wide check names the setting and the source of its value', () => {
    const resolved = resolveSettings(TABLE, { file: NAME, env: { T_MODE: 'fast' } });
    const e = settingsError(() =>
      withSetting(TABLE, resolved, 'mode', () => {
        throw new ValidationError('mode', 'fast', 'not with this name');
      }),
    );
    assert.equal(e.key, 'mode');
    assert.equal(e.context.from, 'env T_MODE');
    assert.equal(e.context.field, 'mode');
  });

  it('reads a config file, naming the file when it is missing or not a JSON object', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cfnet-settings-'));
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ name: 'n' }));
    assert.deepEqual(readSettingsFile(good), { name: 'n' });
    for (const [file, text] of [
      ['bad.json', '{'],
      ['array.json', '[]'],
    ] as const) {
      writeFileSync(join(dir, file), text);
      const e = settingsError(() => readSettingsFile(join(dir, file)));
      assert.equal(e.key, undefined);
      assert.equal(e.context.path, join(dir, file));
    }
    settingsError(() => readSettingsFile(join(dir, 'missing.json')));
  });

  it('--help shows every setting with flag, key, variable and default, within 80 columns', () => {
    const cmd = new Command('t').exitOverride();
    addSettingOptions(cmd, TABLE);
    const help = cmd.helpInformation();
    for (const line of help.split('\n')) assert.ok(line.length <= HELP_WIDTH, `too wide: ${line}`);
    const flat = help.replace(/\s+/g, ' ');
    assert.ok(flat.includes('--retry-count <n>'));
    assert.ok(flat.includes('(retryCount; env T_RETRY_COUNT) [default: 3]'));
    assert.ok(flat.includes('(sourceIp; env T_SOURCE_IP) [default: ""]'));
    assert.ok(flat.includes('(name; env T_NAME) [required]'));
    cmd.parse(['--retry-count', '7', '--verbose', 'no'], { from: 'user' });
    const r = resolveSettings(TABLE, { file: NAME, flags: flagValues(TABLE, cmd.opts()) });
    assert.equal(r.values.retryCount, 7);
    assert.equal(r.values.verbose, false);
  });

  it('wraps free text at 80 columns on spaces, keeping a longer word whole', () => {
    const long = `${'word '.repeat(40)}https://${'x'.repeat(90)}.example end`;
    const lines = wrapText(`${long}\nsecond paragraph`).split('\n');
    for (const line of lines) assert.ok(line.length <= HELP_WIDTH || !line.includes(' '), line);
    assert.ok(lines.some((l) => l.startsWith('https://')));
    assert.equal(lines.at(-1), 'second paragraph');
    assert.equal(lines.join(' ').replace(/\s+/g, ' '), `${long} second paragraph`.replace(/\s+/g, ' '));
  });
});
