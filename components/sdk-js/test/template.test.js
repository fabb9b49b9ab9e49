// The skeleton of `hms-host new --lang js NAME`: rendered, its one test passes.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';

import { TEMPLATE_DIR, TEMPLATE_FILES, renderTemplate } from '../src/template.js';

const CHECK_DIR = fileURLToPath(new URL('../build/template-check/', import.meta.url));

test('the template has exactly the listed files, and only {{name}} placeholders', async () => {
  assert.deepEqual((await readdir(TEMPLATE_DIR)).sort(), [...TEMPLATE_FILES].sort());
  for (const file of TEMPLATE_FILES) {
    const text = await readFile(join(TEMPLATE_DIR, file), 'utf8');
    const placeholders = new Set(text.match(/\{\{[^}]*\}\}/g) ?? []);
    assert.deepEqual([...placeholders], ['{{name}}'], file);
  }
});

test('a rendered skeleton passes its own test', async () => {
  const dir = join(CHECK_DIR, 'hello-check');
  await rm(dir, { recursive: true, force: true });
  await renderTemplate('hello-check', dir);
  const pkg = JSON.parse(await readFile(join(dir, 'package.json'), 'utf8'));
  assert.equal(pkg.name, 'hello-check');
  assert.equal(pkg.scripts.build, 'hms-build app.js -o ../hello-check.wasm');
  // A test runner's children report to it unless told otherwise.
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const run = spawnSync(process.execPath, ['--test', 'app.test.js'], { cwd: dir, env, encoding: 'utf8' });
  assert.equal(run.status, 0, run.stdout + run.stderr);
  assert.match(run.stdout, /# pass 1/);
  await assert.rejects(renderTemplate('Bad_Name', dir), /not a service name/);
});
