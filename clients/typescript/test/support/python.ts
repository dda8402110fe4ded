/** The project's Python side, called as a peer: same inputs in, its answers out (JSON on stdio). */
import { spawnSync } from 'node:child_process';

import { PYTHON, REPO_ROOT } from './paths.js';

/** Environment for the project's Python: `PROOFRECON_NODE_TEST_PYTHONPATH` puts another checkout first. */
export function pythonEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('PROOFRECON_')) env[k] = v;
  const override = process.env.PROOFRECON_NODE_TEST_PYTHONPATH;
  if (override) env.PYTHONPATH = [override, process.env.PYTHONPATH].filter(Boolean).join(':');
  return { ...env, ...extra };
}

/** Run `code` with the JSON of `input` on stdin; it prints one JSON document, returned parsed. */
export function runPython<T>(code: string, input: unknown): T {
  const result = spawnSync(PYTHON, ['-c', code], {
    cwd: REPO_ROOT,
    input: JSON.stringify(input),
    env: pythonEnv(),
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) {
    throw new Error(`python failed (${result.status}): ${result.stderr.slice(-2000)}`);
  }
  return JSON.parse(result.stdout) as T;
}

/** The project's `y_from_secret` (streams/core/cashu.py). */
export const IMPORT_Y_FROM_SECRET = `
from streams.core.cashu import y_from_secret
`;

/** Python's Ys of `secrets`. */
export function pythonYs(secrets: string[]): string[] {
  return runPython<string[]>(
    `${IMPORT_Y_FROM_SECRET}
import json, sys
print(json.dumps([y_from_secret(s) for s in json.load(sys.stdin)]))`,
    secrets,
  );
}

/** aiokafka's DefaultPartitioner (murmur2, as Java's) for each key over `count` partitions. */
export function pythonPartitions(keys: string[], count: number): number[] {
  return runPython<number[]>(
    `import json, sys
from aiokafka.partitioner import DefaultPartitioner
data = json.load(sys.stdin)
partitions = list(range(data["count"]))
p = DefaultPartitioner()
print(json.dumps([p(k.encode("utf-8"), partitions, partitions) for k in data["keys"]]))`,
    { keys, count },
  );
}

/** The worker's mint URL normalisation (streams/core/mint_url.py); null where it refuses one. */
export function pythonMintUrls(urls: string[]): (string | null)[] {
  return runPython<(string | null)[]>(
    `import json, sys
from streams.core.mint_url import normalise_mint_url
out = []
for url in json.load(sys.stdin):
    try:
        out.append(normalise_mint_url(url))
    except ValueError:
        out.append(None)
print(json.dumps(out))`,
    urls,
  );
}
