import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CfnetError } from '../../src/lib/errors.js';
import { EXIT } from '../../src/lib/exit-codes.js';
import { NameDirectory } from '../../src/model/names.js';
import { exitCodeOf, NotFoundError } from '../../src/ops/errors.js';
import { resolveApp } from '../../src/ops/names.js';

/** Two orgs; `web` exists in acme/prod, acme/dev and beta/prod; `api` only in acme/prod. */
const dir = new NameDirectory({
  orgs: [
    { guid: 'o-acme', name: 'acme' },
    { guid: 'o-beta', name: 'beta' },
  ],
  spaces: [
    { guid: 's-acme-prod', name: 'prod', orgGuid: 'o-acme' },
    { guid: 's-acme-dev', name: 'dev', orgGuid: 'o-acme' },
    { guid: 's-beta-prod', name: 'prod', orgGuid: 'o-beta' },
  ],
  apps: [
    { guid: 'a-web-1', name: 'web', spaceGuid: 's-acme-prod' },
    { guid: 'a-web-2', name: 'web', spaceGuid: 's-acme-dev' },
    { guid: 'a-web-3', name: 'web', spaceGuid: 's-beta-prod' },
    { guid: 'a-api', name: 'api', spaceGuid: 's-acme-prod' },
  ],
});
const FROM = { app: '--from', space: '--space', org: '--org' };
const resolve = (ref: Parameters<typeof resolveApp>[1], known?: (g: string) => boolean) =>
  resolveApp(dir, ref, FROM, known);

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  assert.fail('expected an error');
}

describe('app names as the cf CLI takes them', () => {
  it('a unique name resolves to its guid without space or org', () => {
    assert.equal(resolve({ app: 'api' }), 'a-api');
  });

  it('space and org narrow a name to one app, by name or by guid', () => {
    assert.equal(resolve({ app: 'web', space: 'dev' }), 'a-web-2');
    assert.equal(resolve({ app: 'web', space: 'prod', org: 'beta' }), 'a-web-3');
    assert.equal(resolve({ app: 'web', space: 's-acme-prod' }), 'a-web-1');
    assert.equal(resolve({ app: 'web', space: 'prod', org: 'o-acme' }), 'a-web-1');
  });

  it('org/space/app and space/app in one value work like the flags', () => {
    assert.equal(resolve({ app: 'beta/prod/web' }), 'a-web-3');
    assert.equal(resolve({ app: 'dev/web' }), 'a-web-2');
    assert.equal(resolve({ app: 'prod/web', org: 'acme' }), 'a-web-1');
  });

  it('a path that contradicts a flag is invalid input', () => {
    const err = thrown(() => resolve({ app: 'acme/prod/web', org: 'beta' }));
    assert.ok(err instanceof CfnetError);
    assert.equal(exitCodeOf(err), EXIT.invalid);
  });

  it('an ambiguous name is invalid input (exit 2) naming every candidate by org/space/app', () => {
    const err = thrown(() => resolve({ app: 'web' }));
    assert.ok(err instanceof CfnetError);
    assert.equal(err.code, 'CFNET_INVALID');
    assert.equal(exitCodeOf(err), EXIT.invalid);
    assert.deepEqual(err.context.candidates, ['acme/dev/web', 'acme/prod/web', 'beta/prod/web']);
    assert.match(err.message, /--space/);
    // a space name shared by two orgs is still ambiguous without the org
    const inProd = thrown(() => resolve({ app: 'web', space: 'prod' }));
    assert.ok(inProd instanceof CfnetError);
    assert.deepEqual(inProd.context.candidates, ['acme/prod/web', 'beta/prod/web']);
  });

  it('an unknown name is not found (exit 5); a name in another space says where it is', () => {
    const unknown = thrown(() => resolve({ app: 'nope' }));
    assert.ok(unknown instanceof NotFoundError);
    assert.equal(exitCodeOf(unknown), EXIT.notFound);
    const elsewhere = thrown(() => resolve({ app: 'api', space: 'dev' }));
    assert.ok(elsewhere instanceof NotFoundError);
    assert.match(elsewhere.message, /acme\/prod/);
  });

  it('guids pass through: of a named app, and of an app only the world knows', () => {
    assert.equal(resolve({ app: 'a-web-2' }), 'a-web-2');
    assert.equal(resolve({ app: 'a-web-2', space: 'dev' }), 'a-web-2');
    assert.equal(
      resolve({ app: 'unnamed-guid' }, (g) => g === 'unnamed-guid'),
      'unnamed-guid',
    );
    // with no names at all (no CAPI), guids the world knows still resolve
    assert.equal(
      resolveApp(NameDirectory.EMPTY, { app: 'g1' }, FROM, (g) => g === 'g1'),
      'g1',
    );
    const noNames = thrown(() => resolveApp(NameDirectory.EMPTY, { app: 'web' }, FROM));
    assert.ok(noNames instanceof NotFoundError);
    assert.match(noNames.message, /no app names/);
  });

  it('a guid in the wrong space is not found', () => {
    assert.ok(thrown(() => resolve({ app: 'a-web-2', space: 'prod' })) instanceof NotFoundError);
  });
});

describe('NameDirectory', () => {
  it('labels apps org/space/app and falls back to the guid', () => {
    assert.equal(dir.appLabel('a-web-3'), 'beta/prod/web');
    assert.equal(dir.appLabel('unknown'), 'unknown');
    assert.equal(dir.spaceLabel('s-acme-dev'), 'acme/dev');
  });

  it('has an order-free content hash', () => {
    const a = new NameDirectory({ orgs: [], spaces: [], apps: [...dir.data.apps].reverse() });
    const b = new NameDirectory({ orgs: [], spaces: [], apps: dir.data.apps });
    assert.equal(a.hash, b.hash);
    assert.notEqual(a.hash, new NameDirectory({ orgs: [], spaces: [], apps: [] }).hash);
  });
});
