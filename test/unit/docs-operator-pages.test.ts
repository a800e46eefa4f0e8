// The operator pages (docs/migration.md, docs/troubleshooting.md, the BOSH page's "On the VMs"
// section) and the alert rules' annotations quote cfnet commands: each quoted command exists and
// each flag it shows is one of that command's options (read from `cfnet <cmd> --help`, in-process).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { cfnetHelp } from '../helpers/cli-help.js';

const root = new URL('../..', import.meta.url).pathname;
const SOURCES = [
  'docs/migration.md',
  'docs/troubleshooting.md',
  'docs/bosh.md',
  'ops/prometheus/cfnet-alerts.yml',
];

/** `cfnet …` invocations: in backticks, or on a code line (also through a job's bin/cfnet wrapper). */
function invocations(text: string): string[] {
  const found = new Set<string>();
  for (const m of text.matchAll(/`cfnet ([^`]+)`/g)) found.add(m[1]!);
  for (const m of text.matchAll(/bin\/cfnet ([^\n#`]+)/g)) found.add(m[1]!.trim());
  return [...found];
}

/** The command words and the long flags of one invocation. */
function parse(inv: string): { words: string[]; flags: string[] } {
  const tokens = inv.split(/\s+/).filter(Boolean);
  const words: string[] = [];
  for (const t of tokens) {
    if (!/^[a-z][a-z-]*$/.test(t)) break;
    words.push(t);
  }
  const flags = tokens.filter((t) => t.startsWith('--')).map((t) => t.split('=')[0]!);
  return { words, flags };
}

describe('cfnet commands quoted in the operator pages exist', () => {
  for (const source of SOURCES) {
    const text = readFileSync(join(root, source), 'utf8');
    const invs = invocations(text);
    it(`${source}: every quoted command and flag exists`, () => {
      assert.ok(invs.length > 0, `${source} quotes no cfnet command`);
      for (const inv of invs) {
        const { words, flags } = parse(inv);
        if (words.length === 0) continue; // not a command: e.g. the iptables comment `cfnet cfnet: …`
        // the longest prefix of words that is a command (the rest are arguments, e.g. a cell id)
        // the longest prefix of the words that is a command (the rest are arguments, e.g. a file):
        // its help's usage line names exactly those words
        let help: { status: number; text: string } | undefined;
        let matched = 0;
        for (let n = words.length; n > 0; n--) {
          const h = cfnetHelp(words.slice(0, n));
          if (h.status === 0 && h.text.startsWith(`Usage: cfnet ${words.slice(0, n).join(' ')} `)) {
            help = h;
            matched = n;
            break;
          }
        }
        assert.ok(help, `${source}: \`cfnet ${inv}\` is no cfnet command`);
        // a word after a command that has subcommands must be one of them
        if (matched < words.length)
          assert.ok(!help.text.includes('\nCommands:'), `${source}: \`cfnet ${inv}\`: no such subcommand`);
        for (const f of flags)
          assert.ok(help.text.includes(f), `${source}: \`cfnet ${inv}\`: no option ${f}`);
      }
    });
  }
});
