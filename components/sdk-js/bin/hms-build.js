#!/usr/bin/env node
// hms-build APP.js -o OUT.wasm [--wit DIR] [--build-dir DIR]
//
// Builds an @hms/sdk service into a component of the world hms:core/service.

import { parseArgs } from 'node:util';
import { relative } from 'node:path';
import { build, DEFAULT_WIT } from '../src/build.js';

const usage = `usage: hms-build APP.js -o OUT.wasm [--wit DIR] [--build-dir DIR]

  APP.js        module whose default export is service({...}) from @hms/sdk
  -o OUT.wasm   the component to write
  --wit DIR     the hms WIT directory (default: $HMS_WIT, else ${DEFAULT_WIT})
  --build-dir   where the world copy, entry and bundle go (default: build/ beside APP.js)`;

let args;
try {
  args = parseArgs({
    allowPositionals: true,
    options: {
      out: { type: 'string', short: 'o' },
      wit: { type: 'string' },
      'build-dir': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
} catch (e) {
  console.error(`hms-build: ${e.message}\n${usage}`);
  process.exit(2);
}
if (args.values.help) {
  console.log(usage);
  process.exit(0);
}
if (args.positionals.length !== 1 || !args.values.out) {
  console.error(usage);
  process.exit(2);
}

try {
  const result = await build({
    app: args.positionals[0],
    out: args.values.out,
    wit: args.values.wit,
    buildDir: args.values['build-dir'],
    log: (line) => console.error(`hms-build: ${line}`),
  });
  const shown = relative(process.cwd(), result.out) || result.out;
  console.error(`hms-build: built ${shown} (${result.bytes} bytes) in ${result.seconds.toFixed(1)} s`);
  console.log(result.out);
} catch (e) {
  console.error(`hms-build: ${e instanceof Error ? e.message : e}`);
  process.exit(1);
}
