// The docs stand alone: every relative link in README.md and docs/*.md resolves inside the repo (the
// file exists; a `#anchor` names a heading of the target, as GitHub slugs headings), and no file of
// src/, test/ or docs/ names a document that is not in the repo (the design notes the docs replaced).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';

const root = resolve(new URL('../..', import.meta.url).pathname);
const documents = ['README.md', ...readdirSync(join(root, 'docs')).map((f) => `docs/${f}`)].filter((f) =>
  f.endsWith('.md'),
);

/** Text outside fenced code blocks and inline code (links there are examples, not links). */
function prose(text: string): string {
  let inside = false;
  const out: string[] = [];
  for (const line of text.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) {
      inside = !inside;
      out.push('');
    } else out.push(inside ? '' : line.replace(/`[^`\n]*`/g, ''));
  }
  return out.join('\n');
}

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
export function headingSlugs(markdown: string): Set<string> {
  const seen = new Map<string, number>();
  const slugs = new Set<string>();
  let inside = false;
  for (const line of markdown.split('\n')) {
    if (/^\s*(```|~~~)/.test(line)) inside = !inside;
    const m = inside ? null : /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!m) continue;
    const base = m[1]!
      .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\s_-]/gu, '')
      .replace(/\s/g, '-');
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    slugs.add(n === 0 ? base : `${base}-${n}`);
  }
  return slugs;
}

/** Relative link targets of a markdown file: inline links and reference definitions. */
function relativeLinks(markdown: string): string[] {
  const text = prose(markdown);
  const targets = [
    ...[...text.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1]!),
    ...[...text.matchAll(/^\s*\[[^\]]+\]:\s*(\S+)/gm)].map((m) => m[1]!),
  ];
  return targets.filter((t) => !/^[a-z][a-z0-9+.-]*:/i.test(t));
}

describe('docs stand alone', () => {
  it('reads README.md and every docs/*.md', () => {
    assert.ok(documents.includes('README.md'));
    assert.ok(documents.length > 10, documents.join(', '));
  });

  for (const doc of documents) {
    it(`every relative link of ${doc} resolves to a file of the repo and a heading of it`, () => {
      const from = join(root, doc);
      const links = relativeLinks(readFileSync(from, 'utf8'));
      for (const link of links) {
        const [rawPath, anchor] = link.split('#', 2) as [string, string | undefined];
        const path = decodeURIComponent(rawPath);
        const target = path === '' ? from : resolve(dirname(from), path);
        const inRepo = relative(root, target);
        assert.ok(!inRepo.startsWith('..'), `${doc} links ${link}, outside the repo`);
        assert.ok(existsSync(target), `${doc} links ${link}: ${inRepo} does not exist`);
        if (anchor !== undefined && statSync(target).isFile() && target.endsWith('.md')) {
          const slugs = headingSlugs(readFileSync(target, 'utf8'));
          assert.ok(slugs.has(anchor), `${doc} links ${link}: ${inRepo} has no heading #${anchor}`);
        }
      }
    });
  }

  it('no file of src/, test/ or docs/ names a design note that is not in the repo', () => {
    // Spelt in parts so that this file does not name them either.
    const gone = ['design', 'cf-wire', 'silk-behaviour', 'cni-nftables-libraries'].map((n) => `${n}.${'md'}`);
    const hits: string[] = [];
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, entry.name);
        if (entry.isDirectory()) {
          if (entry.name !== 'node_modules' && entry.name !== 'gen') walk(p);
        } else {
          const text = readFileSync(p, 'utf8');
          for (const name of gone) if (text.includes(name)) hits.push(`${relative(root, p)}: ${name}`);
        }
      }
    };
    for (const dir of ['src', 'test', 'docs']) walk(join(root, dir));
    assert.deepEqual(hits, []);
  });
});

describe('headingSlugs', () => {
  it('slugs headings the way GitHub does', () => {
    const slugs = headingSlugs(
      '# Source layout\n## What `cfnet` does (and not)\n## A, B & C\n## Twice\n## Twice\n```\n# not a heading\n```\n',
    );
    assert.deepEqual([...slugs], ['source-layout', 'what-cfnet-does-and-not', 'a-b--c', 'twice', 'twice-1']);
  });
});
