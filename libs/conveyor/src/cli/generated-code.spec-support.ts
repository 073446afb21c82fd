import * as ts from 'typescript';
import type { SpecValidator } from '../resources/spec-validator';

/**
 * Loads generated files (file name → content) as a driver runs them: transpiled to CommonJS, with
 * only their own relative imports resolvable (type imports are erased), so nothing of ajv or the
 * library can be reached. @returns the exports of `index.ts`: every `…SpecValidator`.
 */
export function loadGenerated(files: Map<string, string>): Record<string, SpecValidator> {
  const modules: Record<string, Record<string, unknown>> = {};
  const requireGenerated = (name: string): Record<string, unknown> => {
    const file = `${name.replace(/^\.\//, '')}.ts`;
    if (modules[file]) return modules[file];
    const source = files.get(file);
    if (!source) throw new Error(`generated code requires ${name}`);
    const js = ts.transpileModule(source, {
      compilerOptions: { module: ts.ModuleKind.CommonJS, target: ts.ScriptTarget.ES2022 },
    });
    const exports: Record<string, unknown> = {};
    modules[file] = exports;
    new Function('exports', 'require', js.outputText)(exports, requireGenerated);
    return exports;
  };
  return requireGenerated('./index') as Record<string, SpecValidator>;
}
