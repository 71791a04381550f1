import { describe, expect, it } from 'vitest';
import { eventually } from './support/eventually.js';
import { useTestRedis } from './support/redis.js';
import { useSlackFronts } from './support/slack-front.js';
import { slashCommandBody } from './support/slack-requests.js';

/**
 * `/capi doctor` in the incident channel: one message, posted at once and updated in place with the report
 * (the jumphost read by an agent on the site's read-only queue, Slack checked by the front), and the site's
 * last report on the Home tab.
 */

const CHANNEL = 'C0INCIDENT';
const VISITOR = 'U0VISITOR';

const db = useTestRedis();
const startSlackFront = useSlackFronts(db);

async function world(scenario: string, opts: { readonly agent: boolean; readonly waitMs: number }) {
  const front = await startSlackFront({
    scenarios: [scenario],
    channels: [CHANNEL],
    users: [VISITOR],
    siteFields: { slack_channels: [CHANNEL] },
    service: { doctorTimeoutMs: opts.waitMs },
    agent: opts.agent,
    poster: false,
    home: true,
  });
  const { fake: slack, home } = front;
  const doctor = async () => {
    await front.send(slashCommandBody({ user: VISITOR, channel: CHANNEL, text: 'doctor', slack }));
  };
  return { slack, home, doctor };
}

const text = (blocks: unknown) => JSON.stringify(blocks);

describe('/capi doctor', () => {
  it('should post one message at once and update it in place with the checks, the expired juju login failing', async () => {
    const w = await world('juju-login-expired', { agent: true, waitMs: 60_000 });
    await w.doctor();
    const message = await eventually(
      'the doctor message updated with the report',
      () => {
        const m = w.slack.messages(CHANNEL)[0];
        return m !== undefined && m.updates > 0 ? m : undefined;
      },
      { timeoutMs: 60_000 },
    );
    // One message: posted ("checking"), then updated once; nothing else in the channel.
    expect(w.slack.messages(CHANNEL)).toHaveLength(1);
    expect(message.updates).toBe(1);
    const first = w.slack.calls.find((c) => c.method === 'chat.postMessage');
    expect(text(first?.args.blocks)).toContain('Checking site `site-0`');
    const shown = text(message.blocks);
    expect(shown).toContain('*NOT ready*');
    expect(shown).toMatch(/:x: \*juju login\*: juju-macaroon: exit 1: .*cannot get discharge from/);
    expect(shown).toContain('_Fix:_ the juju login expired: run `juju login` on the jumphost');
    expect(shown).toContain(':white_check_mark: *jumphost host key*: SHA256:');
    expect(shown).toContain(':white_check_mark: *tool juju*:');
    // Slack's own checks, done by the front: the token's scopes and the site's channel.
    expect(shown).toContain(':white_check_mark: *slack scopes*');
    expect(shown).toContain(
      `:white_check_mark: *slack channel ${CHANNEL}*: the bot is a member of #incident-c0incident`,
    );

    // The Home tab shows the site's last doctor result.
    await w.home.opened(VISITOR);
    const tab = text(w.slack.home(VISITOR)?.view.blocks);
    expect(tab).toMatch(/:stethoscope: Last doctor :x: \d+ fail.* UTC · needs a look: [^"]*juju login/);
  });

  it('should say no agent answered, without reaching SSH itself, when no agent serves the site', async () => {
    const w = await world('healthy', { agent: false, waitMs: 1500 });
    await w.doctor();
    const message = await eventually(
      'the doctor message updated',
      () => {
        const m = w.slack.messages(CHANNEL)[0];
        return m !== undefined && m.updates > 0 ? m : undefined;
      },
      { timeoutMs: 60_000 },
    );
    expect(text(message.blocks)).toMatch(
      /:x: \*jumphost and redis\*: not checked: no agent answered in time/,
    );
  });
});
