#!/usr/bin/env node
// `npm create conveyor-driver <directory>`: copies template/ into <directory>, fills in the driver
// name and resource type, and writes package.json with the versions that install right in a Nest 11
// CommonJS app (ESM-only majors of Nest packages would break its jest tests). Plain Node, no
// dependencies: it runs straight from the registry or a tarball.
'use strict';
const fs = require('node:fs');
const path = require('node:path');

const own = require('./package.json');
const USAGE = 'usage: npm create conveyor-driver <directory> [-- --name <driver-name>] [--resource <type>]';
/** NATS consumer names and Kubernetes object names both accept these. */
const NAME = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

function parse(argv) {
  const args = { dir: undefined, name: undefined, resource: 'widget' };
  for (let i = 0; i < argv.length; i += 1) {
    const arg = argv[i];
    if (arg === '--name' || arg === '--resource') {
      const value = argv[(i += 1)];
      if (!value) throw new Error(`${arg} needs a value\n${USAGE}`);
      args[arg.slice(2)] = value;
    } else if (arg === '-h' || arg === '--help') {
      console.log(USAGE);
      process.exit(0);
    } else if (arg.startsWith('-')) {
      throw new Error(`unknown option ${arg}\n${USAGE}`);
    } else if (args.dir === undefined) {
      args.dir = arg;
    } else {
      throw new Error(`one directory only, got ${args.dir} and ${arg}\n${USAGE}`);
    }
  }
  if (!args.dir) throw new Error(USAGE);
  args.name ??= path.basename(path.resolve(args.dir)).toLowerCase();
  if (!NAME.test(args.name)) {
    throw new Error(`driver name "${args.name}": lowercase letters, digits and '-' (at most 63); set one with --name`);
  }
  if (!NAME.test(args.resource)) throw new Error(`resource type "${args.resource}": lowercase letters, digits and '-'`);
  return args;
}

/** The app's package.json: the README's Nest 11 install commands, as ranges. */
function packageJson(name) {
  const ours = `^${own.version}`;
  return {
    name,
    version: '0.1.0',
    private: true,
    description: `Conveyor CI driver ${name}`,
    scripts: {
      build: 'tsc -p tsconfig.build.json',
      start: 'node dist/main.js',
      test: 'jest',
    },
    engines: own.engines,
    dependencies: {
      '@conveyor-ci/nestjs': ours,
      '@nestjs/axios': '^4.0.1',
      '@nestjs/common': '^11.0.0',
      '@nestjs/core': '^11.0.0',
      '@nestjs/microservices': '^11.0.0',
      '@nestjs/platform-express': '^11.0.0',
      '@nestjs/terminus': '^11.0.0',
      nats: '~2.29.3',
      'prom-client': '^15.0.0',
      'reflect-metadata': '^0.2.0',
      rxjs: '^7.8.0',
    },
    devDependencies: {
      '@conveyor-ci/testing': ours,
      '@nestjs/testing': '^11.0.0',
      '@types/jest': '^29.5.0',
      '@types/node': '^20.0.0',
      jest: '^29.7.0',
      'ts-jest': '^29.2.0',
      typescript: '~5.9.0',
    },
    jest: {
      moduleFileExtensions: ['js', 'json', 'ts'],
      rootDir: 'src',
      testRegex: '.*\\.spec\\.ts$',
      transform: { '^.+\\.(t|j)s$': 'ts-jest' },
      testEnvironment: 'node',
    },
  };
}

/** npm leaves dotfiles named .gitignore out of a package, so the template keeps them without the dot. */
const RENAMED = { gitignore: '.gitignore', dockerignore: '.dockerignore' };

function copy(from, to, vars) {
  fs.mkdirSync(to, { recursive: true });
  for (const entry of fs.readdirSync(from, { withFileTypes: true })) {
    const source = path.join(from, entry.name);
    const target = path.join(to, RENAMED[entry.name] ?? entry.name);
    if (entry.isDirectory()) {
      copy(source, target, vars);
    } else {
      const text = fs.readFileSync(source, 'utf8').replace(/__(DRIVER_NAME|RESOURCE|RESOURCE_CLASS)__/g, (_, key) => vars[key]);
      fs.writeFileSync(target, text);
    }
  }
}

function main() {
  const args = parse(process.argv.slice(2));
  const dir = path.resolve(args.dir);
  if (fs.existsSync(dir) && fs.readdirSync(dir).length > 0) {
    throw new Error(`${args.dir} exists and is not empty: choose a new directory`);
  }
  const resourceClass = args.resource
    .split('-')
    .map((part) => part.charAt(0).toUpperCase() + part.slice(1))
    .join('');
  copy(path.join(__dirname, 'template'), dir, {
    DRIVER_NAME: args.name,
    RESOURCE: args.resource,
    RESOURCE_CLASS: resourceClass,
  });
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(packageJson(args.name), null, 2)}\n`);
  console.log(`Wrote driver ${args.name} (resource ${args.resource}) in ${args.dir}. Next:

  cd ${args.dir}
  npm install
  npm test
  npm run build && CONVEYOR_NATS_URL=nats://127.0.0.1:4222 npm start`);
}

try {
  main();
} catch (err) {
  console.error(`create-conveyor-driver: ${err.message}`);
  process.exit(1);
}
