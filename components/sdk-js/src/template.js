// The service skeleton in template/, as `hms-host new --lang js NAME`
// writes it: every file of TEMPLATE_FILES with `{{name}}` replaced by the
// service name (1-64 characters of a-z, 0-9 and '-').

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const TEMPLATE_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', 'template');
/** The files of the skeleton; the only placeholder is `{{name}}`. */
export const TEMPLATE_FILES = ['package.json', 'app.js', 'app.test.js', 'README.md'];

/**
 * Write the skeleton for service `name` into `dir`.
 * @param {string} name
 * @param {string} dir
 */
export async function renderTemplate(name, dir) {
  if (!/^[a-z0-9-]{1,64}$/.test(name)) throw new Error(`not a service name: ${JSON.stringify(name)}`);
  await mkdir(dir, { recursive: true });
  for (const file of TEMPLATE_FILES) {
    const text = await readFile(join(TEMPLATE_DIR, file), 'utf8');
    await mkdir(dirname(join(dir, file)), { recursive: true });
    await writeFile(join(dir, file), text.replaceAll('{{name}}', name));
  }
}
