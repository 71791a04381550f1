import path from 'node:path';
import { BaseSequencer, type TestSequencerConstructor, type TestSpecification } from 'vitest/node';

/**
 * vitest's order (longest first, from the durations of the last run it cached), except that the files named in
 * `longest` go first, in that order, while the cache knows nothing of them: a clean clone (CI) has no cache, and
 * by file size a long file may start last and run on alone while the other worker idles.
 */
export function longestFirst(longest: readonly string[]): TestSequencerConstructor {
  return class LongestFirst extends BaseSequencer {
    override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
      const sorted = await super.sort(files);
      const rank = (spec: TestSpecification): number => {
        const file = path.relative(this.ctx.config.root, spec.moduleId).split(path.sep).join('/');
        const i = longest.indexOf(file);
        const known = this.ctx.cache.getFileTestResults(`${spec.project.name}:${file}`) !== undefined;
        return i === -1 || known ? longest.length : i;
      };
      const group = (spec: TestSpecification) => spec.project.config.sequence.groupOrder;
      return sorted
        .map((spec, i) => ({ spec, i, rank: rank(spec) }))
        .sort((a, b) => group(a.spec) - group(b.spec) || a.rank - b.rank || a.i - b.i)
        .map((x) => x.spec);
    }
  };
}
