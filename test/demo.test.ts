import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { REDIS_URL } from './support/redis.js';

/** `npm run demo`'s entry point as CI and a terminal run it (the build from dist/, as `npm run demo` does). */
const DEMO = new URL('../dist/dev/demo/main.js', import.meta.url).pathname;

function demo(args: readonly string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [DEMO, ...args], {
      env: { ...process.env, REDIS_URL },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    child.once('error', reject);
    child.once('exit', (code) => resolve({ code, out }));
  });
}

describe('npm run demo', () => {
  it('should drive the real serve headless with --yes: the operator starts the run, the approver approves, the channel is printed', async () => {
    const { code, out } = await demo([
      '--yes',
      '--runbook',
      'park',
      '--scenario',
      'healthy',
      '--time-scale',
      '0.002',
    ]);
    expect(out).toMatch(/Olivia \(operator\) types \/capi park/);
    expect(out).toMatch(/Arjun \(approver\) approves: Approval needed: Stop capi-mgmt-v2/);
    // The transcript: the root message in its final state, the thread with the decided approval.
    expect(out).toMatch(/# park on sim-healthy\n {2}run id: r[a-z0-9]+\n {2}Requested by @olivia/);
    expect(out).toMatch(/:white_check_mark: Approved by @arjun at /);
    expect(out).toMatch(/:white_check_mark: Run succeeded after/);
    expect(out).toMatch(/what the simulated cloud recorded \(1 changes\):\n {2}server\.stop c0000000-/);
    expect(out).toMatch(/the run succeeded/);
    expect(code).toBe(0);
  }, 90_000);

  it('should refuse an argument without --runbook, with the usage, before starting anything', async () => {
    const { code, out } = await demo(['--yes', 'capi-test-2']);
    expect(code).toBe(2);
    expect(out).toMatch(/unexpected capi-test-2: arguments follow --runbook NAME/);
    expect(out).toMatch(/npm run demo -- --terminal/);
  });
});
