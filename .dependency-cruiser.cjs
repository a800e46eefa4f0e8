/**
 * The layering of src/ (docs/architecture.md, "Source layout"), checked by `npm run depcruise`
 * (part of `npm test`). A folder may import itself and the folders listed for it below, nothing
 * else under src/. Type-only imports count: a type names the module it comes from.
 *
 * Bottom to top:
 *   gen (generated protobuf)
 *   lib (errors, log, metrics, tls, redis, leader, backoff, …)
 *   host (the one runner of host commands)
 *   model (CF types, parsers, identifiers, BBS wire messages)
 *   rules (pure computation) · api (the agent↔controller wire contract)
 *   state (the Redis contract) · cf (CF clients)
 *   dataplane → cni → agent (cell side) · controller (control plane)
 *   ops · sim · lab → demo
 *   cli (composition of everything)
 *
 * `model` and `rules` are pure: from lib they may import only lib/errors.ts (the error base every
 * layer throws) and lib/error-codes.ts (its code table), which import nothing else, and no I/O
 * module of Node or npm. `api` holds schemas only: it may import lib and model, and no I/O module
 * either (the server and the client that speak it do the I/O).
 */

/** Allowed targets per folder, as path fragments after `src/` (a folder ends in `/`). */
const LAYERS = {
  gen: [],
  lib: [],
  host: ['lib/'],
  model: ['gen/', 'lib/errors\\.ts$', 'lib/error-codes\\.ts$'],
  rules: ['model/', 'lib/errors\\.ts$', 'lib/error-codes\\.ts$'],
  api: ['model/', 'lib/'],
  state: ['rules/', 'model/', 'lib/'],
  cf: ['model/', 'lib/', 'gen/'],
  dataplane: ['host/', 'model/', 'lib/'],
  cni: ['dataplane/', 'host/', 'model/', 'lib/'],
  agent: ['api/', 'cni/', 'dataplane/', 'host/', 'model/', 'lib/'],
  controller: ['api/', 'cf/', 'state/', 'rules/', 'model/', 'lib/', 'gen/'],
  ops: ['api/', 'controller/', 'cf/', 'state/', 'rules/', 'dataplane/', 'model/', 'lib/'],
  sim: ['model/', 'lib/', 'gen/'],
  lab: ['agent/', 'api/', 'cni/', 'controller/', 'dataplane/', 'host/', 'sim/', 'state/', 'rules/', 'cf/', 'model/', 'lib/'],
  demo: ['lab/', 'sim/', 'state/', 'model/', 'lib/'],
  cli: [
    'agent/',
    'api/',
    'cni/',
    'controller/',
    'dataplane/',
    'demo/',
    'host/',
    'lab/',
    'ops/',
    'sim/',
    'state/',
    'rules/',
    'cf/',
    'model/',
    'lib/',
  ],
};

const layerRules = Object.entries(LAYERS).map(([layer, allowed]) => ({
  name: `layer-${layer}`,
  comment: `src/${layer}/ may import only ${allowed.length ? allowed.join(', ') : 'itself'} under src/ (.dependency-cruiser.cjs, LAYERS)`,
  severity: 'error',
  from: { path: `^src/${layer}/` },
  to: { path: '^src/', pathNot: `^src/(?:${[`${layer}/`, ...allowed].join('|')})` },
}));

/** Node and npm modules that do I/O (network, files, processes, Redis, logging sinks). */
const IO_CORE = '^(?:node:)?(?:net|http|https|http2|tls|dns|dgram|fs|fs/promises|child_process|worker_threads|cluster)$';
const IO_NPM =
  'node_modules/(?:ioredis|bullmq|axios|eventsource|pino|undici|fastify|@fastify|@bull-board|proper-lockfile)/';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment:
        'Modules must not import each other in a cycle at run time (a cycle has no bottom to load or test ' +
        'first). A cycle closed only by type imports is allowed: extensions.ts names the Controller its ' +
        'hooks receive, controller.ts calls the hooks.',
      severity: 'error',
      from: { path: '^src/' },
      to: { circular: true, viaOnly: { dependencyTypesNot: ['type-only'] } },
    },
    {
      name: 'pure-no-io-core',
      comment: 'src/model, src/rules and src/api are pure: no network, file or process modules of Node.',
      severity: 'error',
      from: { path: '^src/(?:model|rules|api)/' },
      to: { dependencyTypes: ['core'], path: IO_CORE },
    },
    {
      name: 'pure-no-io-npm',
      comment: 'src/model, src/rules and src/api are pure: no Redis, queue, HTTP or logging packages.',
      severity: 'error',
      from: { path: '^src/(?:model|rules|api)/' },
      to: { path: IO_NPM },
    },
    {
      name: 'errors-base-imports-nothing',
      comment:
        'src/lib/errors.ts is the bottom of the tree (the pure layers import it); it may import only the ' +
        'error-code table, and that only the exit-code table, which imports nothing.',
      severity: 'error',
      from: { path: '^src/lib/(?:errors|error-codes|exit-codes)\\.ts$' },
      to: { path: '^src/', pathNot: '^src/lib/(?:error-codes|exit-codes)\\.ts$' },
    },
    {
      name: 'cni-fallback-no-zod',
      comment:
        'The CNI fallback (a node process started per container operation when the warm executor is ' +
        'down) must not load zod: it costs hundreds of ms. Its config keys use only the zod-free part ' +
        'of the settings engine (lib/settings/spec.ts).',
      severity: 'error',
      from: { path: '^src/cni/fallback\\.ts$' },
      to: { path: 'node_modules/zod/', reachable: true },
    },
    ...layerRules,
    {
      name: 'not-to-unresolvable',
      comment: 'An import that resolves to nothing is a typo or a missing dependency.',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      extensions: ['.ts', '.js', '.d.ts'],
    },
  },
};
