/**
 * `yaml` loaded on first use: most stand-in invocations (`-f value`, tables, JSON) never need it,
 * and every millisecond of start-up is paid on each iteration of a runbook polling loop.
 */
import { createRequire } from 'node:module';

type YamlModule = typeof import('yaml');

const require = createRequire(import.meta.url);
let cached: YamlModule | undefined;

export function yaml(): YamlModule {
  cached ??= require('yaml') as YamlModule;
  return cached;
}
