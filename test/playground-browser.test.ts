import { mkdir } from 'node:fs/promises';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { APPROVER, OPERATOR } from '../dev/playground/cast.js';
import { type PlaygroundRun, startPlayground } from '../dev/playground/start.js';
import { channelTranscript } from '../dev/playground/transcript.js';
import { launchChromium, type TestBrowser } from './support/browser.js';

/**
 * `npm run demo`'s page in a real browser, with everything behind it real but Slack: the real `serve`
 * (Bolt, agent, thread poster) as a child process, the simulated jumphost, Redis. A person types
 * `/capi recover`, watches the thread, and an approver denies it with a reason in Slack's dialog; a second
 * run's requester is refused approving their own run, and an approver approves through the confirm dialog
 * until the load balancer is recovered.
 *
 * Screenshots go to test-artifacts/ (git-ignored); `npm run screenshots` (CAPI_DOCS_SCREENSHOTS=1) writes
 * the README's into docs/ instead: the channel with a run's checklist, the confirm dialog over an approval,
 * the Deny dialog and the Home tab.
 */

const ARTIFACTS = new URL('../test-artifacts/', import.meta.url).pathname;
const DOCS = new URL('../docs/', import.meta.url).pathname;
const FOR_DOCS = process.env.CAPI_DOCS_SCREENSHOTS === '1';

/** A screenshot: the README's (docs/) when asked for, else one to look at after a run (test-artifacts/). */
async function shot(page: Page, name: string, docs = false): Promise<void> {
  await page.screenshot({ path: `${FOR_DOCS && docs ? DOCS : ARTIFACTS}${name}.png` });
}
/** Slack paces the bot at about a post a second; the recover thread is ~45 posts. */
const THREAD_MS = 120_000;

let browser: TestBrowser;
let pg: PlaygroundRun;

beforeAll(async () => {
  [browser, pg] = await Promise.all([
    launchChromium(),
    startPlayground({ scenario: 'lb-error', timeScale: 0.002, port: 0 }),
  ]);
  await mkdir(ARTIFACTS, { recursive: true });
});
afterAll(async () => {
  await pg?.stop();
  await browser?.close();
});

/** Waits for `what`, and on failure says what the channel held (as the operator sees it). */
async function see<T>(what: string, wait: () => Promise<T>): Promise<T> {
  try {
    return await wait();
  } catch (err) {
    throw new Error(
      `${what} never showed: ${(err as Error).message.split('\n')[0]}\n${channelTranscript(pg.view.state(), OPERATOR.id)}`,
    );
  }
}

describe('the playground in a browser', () => {
  it("should deny a step with a reason in Slack's dialog, ending the run and saying why in its thread", async () => {
    const page: Page = await browser.context.newPage();
    await page.goto(pg.server.url);
    await page.selectOption('#as-user', OPERATOR.id);
    await page.fill('#message-box', '/capi recover');
    await page.press('#message-box', 'Enter');
    const root = page.locator('#messages .message').filter({ hasText: 'recover on sim-lb-error' });
    await see('the run root message', () => root.waitFor({ timeout: 20_000 }));
    await see('the thread link', () => root.locator('.replies').waitFor({ timeout: 20_000 }));
    await root.locator('.replies').click();
    const thread = page.locator('#thread-messages');
    // Found by its request's title: its header says where the decision stands, and changes with it.
    const approval = thread.locator('.message', {
      has: page.locator('.bk-header', { hasText: 'Fail over load balancer' }),
    });
    const deny = approval.getByRole('button', { name: 'Deny…' });
    await see('the approval request with its Deny… button', () => deny.waitFor({ timeout: THREAD_MS }));

    await page.selectOption('#as-user', APPROVER.id);
    await deny.click();
    // The bot opened its dialog with the trigger the click carried; the page shows the one the fake holds.
    const dialog = page.getByRole('dialog', { name: 'Deny this step' });
    await see('the reason dialog', () => dialog.waitFor({ timeout: 10_000 }));
    expect(await dialog.textContent()).toContain('Fail over load balancer');
    await dialog.getByLabel('Why? (optional)').fill('<b>the LB came back</b> by itself');
    await shot(page, 'playground-deny-dialog', true);
    await dialog.getByRole('button', { name: 'Deny', exact: true }).click();
    await see('the dialog closing', () => dialog.waitFor({ state: 'hidden', timeout: 10_000 }));

    await see('the denial with its reason in the thread', () =>
      thread
        .locator('.message', { hasText: 'denied by @arjun' })
        .filter({ hasText: '<b>the LB came back</b> by itself' })
        .waitFor({ timeout: 30_000 }),
    );
    await see('the approval request saying who denied', () =>
      approval.locator('.bk-context', { hasText: 'Denied by @arjun' }).waitFor({ timeout: 30_000 }),
    );
    await see('the run ended in the root message', () =>
      root.locator('.bk-section', { hasText: /\bDENIED\b/ }).waitFor({ timeout: THREAD_MS }),
    );
    // Nothing destructive ran: the load balancer is still in ERROR, never failed over.
    const failovers = (await pg.stack.sim.journal()).filter((j) => j.action === 'loadbalancer.failover');
    expect(failovers).toHaveLength(0);
    await page.close();
  }, 240_000);

  it('should run /capi recover from the page to success, refusing self-approval and asking the confirm dialog', async () => {
    const page: Page = await browser.context.newPage();
    await page.goto(pg.server.url);
    await page.selectOption('#as-user', OPERATOR.id);
    await page.fill('#message-box', '/capi recover');
    await page.press('#message-box', 'Enter');

    // The second run in the channel (the first was denied).
    const root = page.locator('#messages .message').filter({ hasText: 'recover on sim-lb-error' }).nth(1);
    await see('the run root message', () => root.waitFor({ timeout: 20_000 }));
    expect(await root.textContent()).toMatch(/run id: r[a-z0-9]+/);
    await see('the thread link', () => root.locator('.replies').waitFor({ timeout: 20_000 }));
    await root.locator('.replies').click();
    const thread = page.locator('#thread-messages');
    // Slack's emoji as Slack shows them: the root's checklist ticks its first step with ✅, not with
    // the shortcode the bot sent (and the step count is the runbook's, whatever it is today).
    const firstStep = root.locator('.bk-section .line', {
      hasText: /✅ Read the mgmt VM's state · step 1 of \d+/,
    });
    await see("step 1 ticked with ✅ in the root's checklist", () => firstStep.waitFor({ timeout: 20_000 }));
    const tick = firstStep.locator('.emoji').first();
    expect(await tick.textContent()).toBe('✅');
    expect(await tick.getAttribute('title')).toBe(':white_check_mark:');
    expect(await root.textContent()).not.toContain(':white_check_mark:');

    // Found by its request's title: its header says where the decision stands, and changes with it.
    const approval = thread.locator('.message', {
      has: page.locator('.bk-header', { hasText: 'Fail over load balancer' }),
    });
    const approve = approval.getByRole('button', { name: 'Approve', exact: true });
    await see('the approval request with its buttons', () => approve.waitFor({ timeout: THREAD_MS }));
    expect(await approval.locator('pre').first().textContent()).toContain('openstack loadbalancer failover');

    // The requester approves their own run: Slack asks first, then the bot refuses, only to them.
    await approve.click();
    const dialog = page.getByRole('dialog');
    await dialog.waitFor();
    expect(await dialog.locator('h2').textContent()).toBe('Approve this destructive step?');
    await dialog.getByRole('button', { name: 'Approve' }).click();
    const refusal = page.locator('#messages .message-ephemeral', { hasText: 'Your click changed nothing' });
    await see('the self-approval refusal', () => refusal.waitFor({ timeout: 20_000 }));
    expect(await refusal.textContent()).toMatch(/you asked for this run; another approver must decide/);
    expect(await refusal.locator('.only-you').textContent()).toContain('Only visible to you');
    await refusal.scrollIntoViewIfNeeded();
    await shot(page, 'playground-mid-run');

    // The approver does not see Olivia's ephemeral; their Home tab lists what waits for them.
    await page.selectOption('#as-user', APPROVER.id);
    await refusal.waitFor({ state: 'detached' });
    await page.click('#home-link');
    const home = page.locator('#home-blocks');
    await see('the approval waiting for the approver on their Home tab', () =>
      home
        .locator('.bk-section', { hasText: /Fail over load balancer .* asked by @olivia/ })
        .waitFor({ timeout: 20_000 }),
    );
    expect(await home.locator('.bk-section').first().textContent()).toBe('✋ Waiting for you');
    // One side pane, as in Slack: Home covers the thread, which is back when Home closes.
    expect(await page.locator('#thread').isHidden()).toBe(true);
    await shot(page, 'playground-home', true);
    await page.click('#close-home');
    await approval.waitFor();

    // Approving goes through the same dialog as Olivia's attempt (the request in view behind it).
    await approval.evaluate((el) => el.scrollIntoView({ block: 'start' }));
    await approve.click();
    await dialog.waitFor();
    expect(await dialog.textContent()).toContain('Fail over load balancer');
    await shot(page, 'playground-approve-confirm', true);
    await dialog.getByRole('button', { name: 'Approve' }).click();

    await see('the approval message saying who approved', () =>
      approval.locator('.bk-context', { hasText: 'Approved by @arjun' }).waitFor({ timeout: 30_000 }),
    );
    expect(await approval.getByRole('button').count()).toBe(0);
    await see('the run succeeded in the root message', () =>
      root.locator('.bk-section', { hasText: 'succeeded' }).waitFor({ timeout: THREAD_MS }),
    );
    await see('the run summary at the end of the thread', () =>
      thread.locator('.message', { hasText: 'Run succeeded after' }).waitFor({ timeout: THREAD_MS }),
    );
    await shot(page, 'playground-run', true);

    // The cloud itself, not the bot's word: the LB is back, failed over exactly once.
    const cloud = await pg.stack.sim.state();
    expect(cloud.loadbalancers.map((lb) => lb.provisioningStatus)).toEqual(['ACTIVE']);
    const failovers = (await pg.stack.sim.journal()).filter((j) => j.action === 'loadbalancer.failover');
    expect(failovers).toHaveLength(1);
    expect(await pg.stack.sim.violations()).toEqual([]);
  }, 240_000);
});
