/** Where things are, found from this file's own location (never an absolute path). */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function upFrom(start: string, accept: (dir: string) => boolean): string {
  let dir = start;
  for (;;) {
    if (accept(dir)) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`no matching directory above ${start}`);
    dir = parent;
  }
}

const here = dirname(fileURLToPath(import.meta.url));

/** The package (clients/typescript). */
export const PACKAGE_ROOT = upFrom(here, (dir) => {
  const manifest = join(dir, 'package.json');
  return existsSync(manifest) && JSON.parse(readFileSync(manifest, 'utf8')).name === 'proofrecon-client';
});

/** The proofrecon repository (its pyproject.toml, streams/ and schemas/). */
export const REPO_ROOT = upFrom(PACKAGE_ROOT, (dir) =>
  ['pyproject.toml', 'streams', 'schemas'].every((name) => existsSync(join(dir, name))),
);

/** The project's Python (its venv): runs the worker and the parity checks. */
export const PYTHON = join(REPO_ROOT, '.venv', 'bin', 'python');
export const PROOFRECON_CLI = join(REPO_ROOT, '.venv', 'bin', 'proofrecon');
