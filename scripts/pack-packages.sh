#!/usr/bin/env bash
# Builds @conveyor-ci/nestjs and @conveyor-ci/testing as publishable packages and packs them, with
# the create-conveyor-driver scaffolder (plain JavaScript, nothing to build), into the directory
# given (default: .packages/). Plain tsc, not `nest build`: Nest's builder rewrites
# the `@conveyor-ci/nestjs` imports of the testing package into relative paths into this repo,
# while a published package must import its sibling by name.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mkdir -p "${1:-.packages}" && cd "${1:-.packages}" && pwd)"
rm -rf libs/conveyor/dist libs/testing/dist
npx tsc -p libs/conveyor/tsconfig.lib.json
npx tsc -p libs/testing/tsconfig.pack.json
for lib in conveyor testing; do
  cp LICENSE "libs/$lib/LICENSE"
  (cd "libs/$lib" && npm pack --pack-destination "$out" --silent >/dev/null)
  rm "libs/$lib/LICENSE"
done
cp LICENSE packages/create-conveyor-driver/LICENSE
(cd packages/create-conveyor-driver && npm pack --pack-destination "$out" --silent >/dev/null)
rm packages/create-conveyor-driver/LICENSE
ls "$out"/*.tgz
