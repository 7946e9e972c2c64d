/**
 * certgate's layering, checked by dependency-cruiser on the TypeScript sources (`npm run lint:deps`,
 * which `npm test` runs first, so .ci/run checks it on every Node line).
 *
 * The folders of src/ stand on floors, lowest first. A module may import modules of its own folder (or,
 * at the root, only itself) and of any folder on a LOWER floor: never a folder above it, and never a
 * neighbour on the same floor. So the folder graph has no cycle, and what a folder means can be read
 * from what it may use. Type-only imports count (`tsPreCompilationDeps`): `import type` ties a folder to
 * another as much as a value import does, and file-level cycles are refused whatever the import kind.
 *
 * A new folder (or root file) must be given a floor here: importing a module outside the floors is an
 * error too.
 *
 * The folder graph, for a reader or a before/after comparison:
 *   npx depcruise src --config .dependency-cruiser.cjs --collapse '^src/([^/]+/|[^/]+$)' --output-type text
 *   (or --output-type archi | dot -Tsvg > folders.svg)
 */
'use strict';

/** Lowest first. `x.ts` is a root file of src/, anything else a folder. */
const FLOORS = [
  // Shared by everything: the error codes and problems, the logger, the one writer of certgate's answers.
  ['errors.ts', 'log.ts', 'respond.ts'],
  // The X.509 floor (DER, DN, PEM, certificate facts, CRLs); the HTTP grammar routes are matched with
  // (Host, request path, route values); the network floor (the PROXY protocol header, CIDR ranges); the echo
  // upstream (`certgate whoami`), which uses nothing of certgate.
  ['x509', 'http', 'net', 'echo-upstream.ts'],
  // What a client certificate says and how certgate spells it to the upstream; the dev PKI.
  ['identity', 'pki'],
  // The configuration: checked against the HTTP grammar and the identity header rules.
  ['config'],
  // The server's TLS material, its checks, reloads, revocation and the trust check.
  ['tls'],
  // What a client reads in certgate's answers (refusal hints, the whoami_path answer): shared by the
  // server (proxy/) and the client-side doctor (probe/), which import nothing else of each other.
  ['answers'],
  // The request pipeline; certgate probe (the client side: it must not import the server's modules).
  ['proxy', 'probe'],
  // The admin listener, metrics and status (they read the pipeline's stores); enrollment.
  ['admin', 'enroll'],
  // The composition root.
  ['app'],
  // node:cluster: the primary and the worker, assembled from app/.
  ['cluster'],
  ['commands'],
  ['cli.ts'],
];

const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const pathOf = (unit) => (unit.endsWith('.ts') ? `^src/${esc(unit)}$` : `^src/${esc(unit)}/`);
const ALL = FLOORS.flat();

const floorRules = FLOORS.flatMap((units, floor) => {
  const below = FLOORS.slice(0, floor).flat();
  return units.map((unit) => ({
    name: `floor:${unit}`,
    comment: `src/${unit} (floor ${floor}) may import only ${below.length === 0 ? 'nothing of certgate' : below.join(', ')}` +
      ' besides itself: a lower floor never imports a higher one or a neighbour (.dependency-cruiser.cjs FLOORS)',
    severity: 'error',
    from: { path: pathOf(unit) },
    to: { path: '^src/', pathNot: [pathOf(unit), ...below.map(pathOf)] },
  }));
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'an import cycle between files (type-only imports included): cut it by moving the shared part down a floor',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    ...floorRules,
    {
      name: 'unplaced',
      comment: 'a module outside the floors of .dependency-cruiser.cjs: give its folder (or root file) a floor there',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^src/', pathNot: ALL.map(pathOf) },
    },
    {
      name: 'not-to-unresolvable',
      comment: 'an import dependency-cruiser cannot resolve would hide its edge from every rule above',
      severity: 'error',
      from: { path: '^src/' },
      to: { couldNotResolve: true },
    },
  ],
  options: {
    // Read the TypeScript sources before compilation, so `import type` and type-only re-exports are edges.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: 'node_modules' },
    // src/*.ts import each other as './x.js' (NodeNext); with tsConfig these resolve to the .ts sources.
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
