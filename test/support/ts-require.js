'use strict';
/* global require, __dirname */
/* eslint-disable @typescript-eslint/no-require-imports -- a CommonJS preload script */
/**
 * `node -r ./test/support/ts-require.js child.ts`: loads the repository's TypeScript sources in a
 * plain Node process (ts-jest exists only inside Jest), each file transpiled when it is required,
 * with the repository's compiler options. A child process then runs the current sources, not
 * whatever `npm run build` last left in dist/, and its `require.cache` is Node's own.
 */
const { readFileSync } = require('node:fs');
const path = require('node:path');
const ts = require('typescript');

const root = path.resolve(__dirname, '../..');
const { config } = ts.readConfigFile(path.join(root, 'tsconfig.json'), ts.sys.readFile);
const { options } = ts.convertCompilerOptionsFromJson(config.compilerOptions, root);
// Stack traces point into the .ts files without a source-map loader.
Object.assign(options, { sourceMap: false, inlineSourceMap: true, inlineSources: true, declaration: false });

require.extensions['.ts'] = (module, filename) => {
  const source = readFileSync(filename, 'utf8');
  const { outputText } = ts.transpileModule(source, { compilerOptions: options, fileName: filename });
  module._compile(outputText, filename);
};
