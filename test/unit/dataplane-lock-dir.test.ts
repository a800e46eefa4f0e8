// One nft lock directory on a cell: the agent (cniStateDir), the CNI plugin (state_dir), the
// NftDataplane default and `cfnet dataplane apply/drift --state-dir` all default to
// DEFAULT_LOCK_DIR, so the CLI run with its defaults on a cell takes the same lock file as the
// agent for the same table and waits for the agent's transactions.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { resolveAgentConfig } from '../../src/agent/config.js';
import { parseNetConfig } from '../../src/cni/config.js';
import { DEFAULT_LOCK_DIR, DEFAULT_TABLE, nftLockFile } from '../../src/dataplane/layout.js';
import { cfnetHelp } from '../helpers/cli-help.js';

const root = new URL('../..', import.meta.url).pathname;
const AGENT_REQUIRED = {
  cellId: 'cell-1',
  controllerUrl: 'https://controller.example:4190/',
  caCert: '/etc/ca.crt',
  clientCert: '/etc/client.crt',
  clientKey: '/etc/client.key',
};

/** A job spec property's default, read through ruby's YAML. */
function boshDefault(job: string, property: string): unknown {
  const res = spawnSync(
    'ruby',
    [
      '-ryaml',
      '-rjson',
      '-e',
      'puts JSON.generate(YAML.safe_load(File.read(ARGV[0]))["properties"][ARGV[1]]["default"])',
      join(root, 'bosh', 'jobs', job, 'spec'),
      property,
    ],
    { encoding: 'utf8' },
  );
  assert.equal(res.status, 0, res.stderr);
  return JSON.parse(res.stdout);
}

describe('one nft lock directory shared by the agent, the CNI plugin and cfnet dataplane', () => {
  it('is on /var/vcap/data, where bpm lets the agent write', () => {
    assert.match(DEFAULT_LOCK_DIR, /^\/var\/vcap\/data\//);
  });

  it("the agent's default lock directory and the CNI plugin's are DEFAULT_LOCK_DIR", () => {
    assert.equal(resolveAgentConfig({ file: AGENT_REQUIRED }).cniStateDir, DEFAULT_LOCK_DIR);
    const cni = parseNetConfig({
      cniVersion: '1.0.0',
      name: 'cfnet',
      type: 'cfnet-cni',
      subnet: '10.255.3.0/24',
    });
    assert.equal(cni.stateDir, DEFAULT_LOCK_DIR);
  });

  for (const cmd of ['apply', 'drift', 'show']) {
    it(`cfnet dataplane ${cmd} defaults --state-dir to DEFAULT_LOCK_DIR`, () => {
      const help = cfnetHelp(['dataplane', cmd]);
      assert.equal(help.status, 0, help.text);
      assert.match(
        help.text.replace(/\s+/g, ' '),
        new RegExp(`--state-dir <dir>.*\\(default: "${DEFAULT_LOCK_DIR}"\\)`),
      );
    });
  }

  it('the BOSH jobs default to it too (cfnet-agent cni_state_dir, cni state_dir)', () => {
    assert.equal(boshDefault('cfnet-agent', 'cni_state_dir'), DEFAULT_LOCK_DIR);
    assert.equal(boshDefault('cni', 'state_dir'), DEFAULT_LOCK_DIR);
  });

  it('so the CLI with its defaults and the agent with its defaults lock the same file per table', () => {
    const agent = resolveAgentConfig({ file: AGENT_REQUIRED });
    assert.equal(
      nftLockFile(DEFAULT_LOCK_DIR, DEFAULT_TABLE),
      nftLockFile(agent.cniStateDir, agent.nftTable),
    );
    assert.equal(nftLockFile(DEFAULT_LOCK_DIR, DEFAULT_TABLE), '/var/vcap/data/cfnet/state/nft-cfnet');
    // another namespace or table is another lock (the lab's cells each have their own)
    assert.notEqual(nftLockFile(DEFAULT_LOCK_DIR, 'cfnet', 'cell-a'), nftLockFile(DEFAULT_LOCK_DIR, 'cfnet'));
    assert.equal(nftLockFile('/tmp/x/', 'cfnet', 'n1'), '/tmp/x/nft-cfnet.n1');
  });
});
