import * as fs from 'node:fs';
import * as path from 'node:path';
import * as ts from 'typescript';

/**
 * The library's layers go one way (issue 24): protocol, then settlement (pure), reconcile, run,
 * transport; a lower layer never imports a higher one, and no file reaches itself through its
 * imports. Read from the sources with the TypeScript parser, so a cycle or an upward import fails
 * here before it confuses a reader (or Node's load order: a class seen as `undefined` in a cycle).
 */

/** The layers, lowest first. A file may import its own layer and the ones below it. */
const LAYERS = ['protocol', 'settlement', 'reconcile', 'run', 'transport'];
/** At the very bottom: nothing of the library outside their own folder, not even a type. */
const BOTTOM = ['util', 'protocol'];
/**
 * Shared by every layer, outside the order: a layer may use them, but never reach a higher layer
 * through them (checked on runtime imports), and no cycle may pass through them.
 */
const HELPERS = ['client', 'logger', 'module', 'registry', 'resources', 'run-control', 'security', 'tracing'];
/** Entry points: the barrels, the composition root, the optional subpaths and the `bin` (cli). Only they import each other. */
const ENTRY_FOLDERS = ['cli', 'console', 'health', 'metrics'];
const ENTRY_FILES = ['index.ts', 'internal.ts', 'module/conveyor.module.ts'];

interface Edge {
  from: string;
  to: string;
  /** `import type`, `export type`, or every named binding marked `type`: erased from the JavaScript. */
  typeOnly: boolean;
}

const ROOT = __dirname;

/** The library's sources (tests and their support files left out), relative to ROOT with `/`. */
function sourceFiles(dir = ROOT): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return sourceFiles(full);
    const test = /\.(spec|spec-support)\.ts$/.test(entry.name) || entry.name.endsWith('.d.ts');
    return entry.name.endsWith('.ts') && !test ? [path.relative(ROOT, full).split(path.sep).join('/')] : [];
  });
}

function isTypeOnlyImport(node: ts.ImportDeclaration): boolean {
  const clause = node.importClause;
  if (!clause) return false; // `import './x'`: run for its effects
  if (clause.isTypeOnly) return true;
  const named = clause.namedBindings;
  return (
    !clause.name &&
    named !== undefined &&
    ts.isNamedImports(named) &&
    named.elements.length > 0 &&
    named.elements.every((element) => element.isTypeOnly)
  );
}

function isTypeOnlyExport(node: ts.ExportDeclaration): boolean {
  if (node.isTypeOnly) return true;
  const named = node.exportClause;
  return (
    named !== undefined &&
    ts.isNamedExports(named) &&
    named.elements.length > 0 &&
    named.elements.every((element) => element.isTypeOnly)
  );
}

/** Every module specifier of `file` (imports, re-exports, `import()` and `require()`), and whether it is type-only. */
function specifiersOf(file: string): { specifier: string; typeOnly: boolean }[] {
  const text = fs.readFileSync(path.join(ROOT, file), 'utf8');
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, false);
  const found: { specifier: string; typeOnly: boolean }[] = [];
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node) && ts.isStringLiteral(node.moduleSpecifier)) {
      found.push({ specifier: node.moduleSpecifier.text, typeOnly: isTypeOnlyImport(node) });
    } else if (
      ts.isExportDeclaration(node) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      found.push({ specifier: node.moduleSpecifier.text, typeOnly: isTypeOnlyExport(node) });
    } else if (
      ts.isCallExpression(node) &&
      (node.expression.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(node.expression) && node.expression.text === 'require')) &&
      node.arguments.length === 1 &&
      ts.isStringLiteralLike(node.arguments[0])
    ) {
      found.push({ specifier: node.arguments[0].text, typeOnly: false });
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      const literal = node.argument.literal;
      if (ts.isStringLiteral(literal)) found.push({ specifier: literal.text, typeOnly: true });
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The file a relative specifier names (`x.ts` or `x/index.ts`), or undefined. */
function resolve(from: string, specifier: string): string | undefined {
  const base = path.posix.join(path.posix.dirname(from), specifier);
  return [`${base}.ts`, `${base}/index.ts`].find((candidate) => fs.existsSync(path.join(ROOT, candidate)));
}

function readGraph(): { files: string[]; edges: Edge[]; unresolved: string[] } {
  const files = sourceFiles();
  const edges: Edge[] = [];
  const unresolved: string[] = [];
  for (const file of files) {
    for (const { specifier, typeOnly } of specifiersOf(file)) {
      if (!specifier.startsWith('.')) continue; // a package
      const to = resolve(file, specifier);
      if (to) edges.push({ from: file, to, typeOnly });
      else unresolved.push(`${file}: '${specifier}'`);
    }
  }
  return { files, edges, unresolved };
}

function adjacency(edges: Edge[], include: (edge: Edge) => boolean): Map<string, string[]> {
  const next = new Map<string, string[]>();
  for (const edge of edges) {
    if (!include(edge)) continue;
    const list = next.get(edge.from) ?? [];
    if (!list.includes(edge.to)) list.push(edge.to);
    next.set(edge.from, list);
  }
  return next;
}

/**
 * One cycle per strongly connected component of `next` (Tarjan), each as the files it passes
 * through, back to the first: `a -> b -> a`.
 */
function findCycles(next: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const components: string[][] = [];
  const strongConnect = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        strongConnect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || (next.get(v) ?? []).includes(v)) components.push(component);
  };
  for (const v of [...next.keys()].sort()) if (!index.has(v)) strongConnect(v);
  return components.map((component) => {
    const members = new Set(component);
    const start = [...component].sort()[0];
    // Shortest way back to `start` within the component (breadth first).
    const previous = new Map<string, string>();
    const queue = [start];
    while (queue.length > 0) {
      const v = queue.shift()!;
      for (const w of next.get(v) ?? []) {
        if (!members.has(w)) continue;
        if (w === start) {
          const cycle = [start];
          for (let at: string | undefined = v; at !== undefined && at !== start; at = previous.get(at))
            cycle.splice(1, 0, at);
          return [...cycle, start];
        }
        if (!previous.has(w)) {
          previous.set(w, v);
          queue.push(w);
        }
      }
    }
    return [...component, component[0]];
  });
}

const folderOf = (file: string): string => (file.includes('/') ? file.split('/')[0] : '');
const layerOf = (file: string): number => LAYERS.indexOf(folderOf(file));
const isEntry = (file: string): boolean =>
  ENTRY_FILES.includes(file) || ENTRY_FOLDERS.includes(folderOf(file));
const show = (edge: Edge): string => `${edge.from} -> ${edge.to}${edge.typeOnly ? ' (type-only)' : ''}`;

describe('layering of libs/conveyor/src', () => {
  const { files, edges, unresolved } = readGraph();

  it('reads every import of the library, and every folder has its place', () => {
    expect(files.length).toBeGreaterThan(100);
    expect(edges.length).toBeGreaterThan(files.length);
    expect(unresolved).toEqual([]);
    const folders = new Set(files.map(folderOf).filter(Boolean));
    const placed = new Set([...LAYERS, ...BOTTOM, ...HELPERS, ...ENTRY_FOLDERS]);
    // A new folder must be given a place here (a layer, the bottom, a helper or an entry point).
    expect([...folders].filter((folder) => !placed.has(folder))).toEqual([]);
  });

  it('finds the cycles it is meant to find (the detector itself)', () => {
    const graph = new Map([
      ['a', ['b']],
      ['b', ['c', 'd']],
      ['c', ['a']],
      ['d', []],
      ['e', ['e']],
    ]);
    expect(findCycles(graph)).toEqual([
      ['a', 'b', 'c', 'a'],
      ['e', 'e'],
    ]);
    expect(
      findCycles(
        new Map([
          ['a', ['b']],
          ['b', []],
        ]),
      ),
    ).toEqual([]);
  });

  it('has no import cycle, type-only imports included', () => {
    expect(findCycles(adjacency(edges, () => true)).map((cycle) => cycle.join(' -> '))).toEqual([]);
  });

  it(`imports only downwards between layers (${LAYERS.join(' < ')}), type-only imports included`, () => {
    const upwards = edges.filter((e) => layerOf(e.from) >= 0 && layerOf(e.to) > layerOf(e.from));
    expect(upwards.map(show)).toEqual([]);
  });

  it('never reaches a higher layer at runtime through a helper folder', () => {
    const next = adjacency(edges, (edge) => !edge.typeOnly);
    const violations: string[] = [];
    for (const file of files.filter((f) => layerOf(f) >= 0)) {
      const previous = new Map<string, string>([[file, '']]);
      const queue = [file];
      while (queue.length > 0) {
        const v = queue.shift()!;
        for (const w of next.get(v) ?? []) {
          if (previous.has(w)) continue;
          previous.set(w, v);
          queue.push(w);
          if (layerOf(w) > layerOf(file)) {
            const chain = [w];
            for (let at = v; at; at = previous.get(at)!) chain.unshift(at);
            violations.push(chain.join(' -> '));
          }
        }
      }
    }
    expect(violations).toEqual([]);
  });

  it(`keeps ${BOTTOM.join(' and ')} at the bottom: they import nothing of the library outside their folder`, () => {
    const out = edges.filter((e) => BOTTOM.includes(folderOf(e.from)) && folderOf(e.to) !== folderOf(e.from));
    expect(out.map(show)).toEqual([]);
  });

  it('leaves the entry points (barrels, ConveyorModule, health, metrics) on top: only entry points import them', () => {
    const into = edges.filter((e) => isEntry(e.to) && !isEntry(e.from));
    expect(into.map(show)).toEqual([]);
  });
});
