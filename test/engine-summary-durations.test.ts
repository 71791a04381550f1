/**
 * What a step says it found (`summary:`), and a run's duration from its request with the wait for people
 * apart, as the engine reports them. In-memory executor: milliseconds per test.
 */
import { describe, expect, it } from 'vitest';
import { ofType, recordedRun, scriptedApprovals, testRunbook } from './support/engine.js';
import { ScriptedExecutor } from './support/scripted-executor.js';

const PODS = JSON.stringify({
  items: [
    { metadata: { namespace: 'capi-system', name: 'capi-controller' }, status: { phase: 'Running' } },
    { metadata: { namespace: 'capo-system', name: 'capo-controller' }, status: { phase: 'Pending' } },
    { metadata: { namespace: 'default', name: 'web' }, status: { phase: 'Running' } },
  ],
});

describe('a step summary', () => {
  it('should put the rendered summary on step.finished, also when the step then fails its expect', async () => {
    const rb = testRunbook(`steps:
  - id: controllers
    title: Check the controllers
    run: get-pods
    parse: json
    capture:
      controllers: filter(out.items, it.metadata.namespace =~ "capi-|capo-")
      not_running: filter(controllers, it.status.phase != "Running")
    summary: "{len(controllers) - len(not_running)} of {len(controllers)} controller pods Running"
    expect: len(not_running) == 0
    expect_message: "not Running: {join(map(not_running, it.metadata.name), ', ')}"
`);
    const { outcome, events } = recordedRun(rb, new ScriptedExecutor([['get-pods', { stdout: PODS }]]));
    expect((await outcome).status).toBe('failed');
    const [finished] = ofType(events, 'step.finished');
    expect(finished).toMatchObject({
      status: 'failed',
      summary: '1 of 2 controller pods Running',
      message: 'controllers: not Running: capo-controller',
    });
    expect(ofType(events, 'step.started')[0]?.parsed).toBe(true);
  });

  it('should say the summary could not be rendered rather than fail a step that passed', async () => {
    const rb = testRunbook(`steps:
  - id: vm
    title: Read the VM
    run: show-vm
    parse: json
    summary: "{out.status * 2} servers"
`);
    const { outcome, events } = recordedRun(
      rb,
      new ScriptedExecutor([['show-vm', { stdout: '{"status": "ACTIVE"}' }]]),
    );
    expect((await outcome).status).toBe('succeeded');
    const [finished] = ofType(events, 'step.finished');
    expect(finished?.status).toBe('ok');
    expect(finished?.summary).toMatch(/^\(summary not shown: /);
  });
});

describe("a run's duration", () => {
  it('should count from the request and tell the wait for the approval apart', async () => {
    const rb = testRunbook(`steps:
  - id: stop
    title: Stop it
    destructive: true
    guard:
      - run: is-stopped
        skip_when: stdout == "yes"
        say: already stopped
    approval:
      summary: Stop it
      targets: ["the thing"]
    verify:
      run: is-stopped
      took_effect: stdout == "yes"
      say: stopped
      check_by_hand: look
    run: stop-it
`);
    const requestedAt = new Date(Date.now() - 60_000).toISOString();
    // The "human" takes a little while: the engine measures the wait itself when the port decides in-process.
    let decidedAfter = 0;
    const approvals = scriptedApprovals(['approve'], async () => {
      const asked = Date.now();
      await new Promise<void>((resolve) => setImmediate(resolve));
      decidedAfter = Date.now() - asked;
    });
    const { outcome, events } = recordedRun(
      rb,
      new ScriptedExecutor([
        ['is-stopped', { stdout: 'no\n' }],
        ['stop-it', {}],
      ]),
      { approvals, requestedAt },
    );
    expect((await outcome).status).toBe('succeeded');
    const [started] = ofType(events, 'run.started');
    const [finished] = ofType(events, 'run.finished');
    expect(started?.requestedAt).toBe(requestedAt);
    expect(finished?.durationMs).toBeGreaterThanOrEqual(60_000);
    expect(finished?.waitingMs).toBeGreaterThanOrEqual(decidedAfter);
    expect(finished?.waitingMs).toBeLessThan(finished?.durationMs ?? 0);
  });

  it("should take the whole run's wait from the port that knows it when a durable run resumed", async () => {
    const rb = testRunbook(`steps:
  - id: look
    title: Look
    run: look
`);
    const { events } = recordedRun(rb, new ScriptedExecutor([['look', { stdout: 'ok\n' }]]), {
      waitingMs: async () => 71_000,
      requestedAt: new Date(Date.now() - 87_000).toISOString(),
    });
    await expect.poll(() => ofType(events, 'run.finished').length).toBe(1);
    expect(ofType(events, 'run.finished')[0]).toMatchObject({ waitingMs: 71_000 });
    expect(ofType(events, 'run.finished')[0]?.durationMs).toBeGreaterThanOrEqual(87_000);
  });
});
