import { copyFile, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRunbooks } from '../src/runbook/load.js';
import { type CapiCommands, capiCommands, isReadOnly } from '../src/slack/command.js';
import type { CapiContext } from '../src/slack/context.js';
import { dispatchCapi } from '../src/slack/listeners/commands/index.js';

const COMMANDS = new URL('../commands/', import.meta.url).pathname;

let capi: CapiCommands;
beforeAll(async () => {
  capi = capiCommands((await loadRunbooks(COMMANDS)).runbooks.values());
});

describe('/capi command parsing', () => {
  it.each([
    ['recover', { kind: 'run', runbook: 'recover', args: [] }],
    ['  stuck-delete   capi-test-2 ', { kind: 'run', runbook: 'stuck-delete', args: ['capi-test-2'] }],
    [
      'failover 0f968008-4c1e-4d2a-9b7e-2b9d3c4e5f60',
      { kind: 'run', runbook: 'failover', args: ['0f968008-4c1e-4d2a-9b7e-2b9d3c4e5f60'] },
    ],
    ['status', { kind: 'status' }],
    ['status r1abc', { kind: 'status', runId: 'r1abc' }],
    ['cancel r1abc', { kind: 'cancel', runId: 'r1abc' }],
    ['timeline r1abc', { kind: 'timeline', runId: 'r1abc' }],
    ['doctor', { kind: 'doctor' }],
    ['release  server show: SHUTOFF ', { kind: 'release', reason: 'server show: SHUTOFF' }],
    ['', { kind: 'help' }],
    ['help', { kind: 'help' }],
    // A runbook whose one argument can be picked from a list offers the list when the argument is left out.
    ['stuck-delete', { kind: 'pick', runbook: 'stuck-delete', readOnly: false }],
    ['failover', { kind: 'pick', runbook: 'failover', readOnly: false }],
  ])('should read %j as %j', (text, expected) => {
    expect(capi.parse(text)).toMatchObject(expected);
  });

  it.each([
    ['reboot', /`reboot` is not a \/capi subcommand/],
    ['recover now', /`recover` takes no arguments: `\/capi recover`/],
    ['image-check', /`image-check` takes IMAGE: `\/capi image-check IMAGE`/],
    ['stuck-delete a b', /`stuck-delete` takes CLUSTER: `\/capi stuck-delete CLUSTER`/],
    ['failover a b', /`failover` takes LB/],
    ['cancel', /`cancel` takes one run id/],
    ['doctor lab1', /`doctor` takes no arguments/],
    ['cancel r1; rm -rf /', /takes one run id/],
    ['release', /`release` needs what you checked by hand/],
    ['status <@U123>', /is not a run id/],
    ['constructor', /`constructor` is not a \/capi subcommand/],
    ['__proto__', /`__proto__` is not a \/capi subcommand/],
    ['toString x', /`toString` is not a \/capi subcommand/],
  ])('should name what was wrong when the text is %j', (text, problem) => {
    const parsed = capi.parse(text);
    expect(parsed.kind).toBe('invalid');
    expect(parsed.kind === 'invalid' ? parsed.problem : '').toMatch(problem);
  });

  it('should open diagnose, doctor, status, timeline and help to anyone and keep the rest for operators', () => {
    const open = ['diagnose', 'doctor', 'status', 'timeline r1', 'help'].map((t) =>
      isReadOnly(capi.parse(t)),
    );
    const guarded = [
      'recover',
      'park',
      'sweep',
      'cancel r1',
      'failover x',
      'stuck-delete x',
      'release ok',
    ].map((t) => isReadOnly(capi.parse(t)));
    expect(open).toEqual([true, true, true, true, true]);
    expect(guarded).toEqual([false, false, false, false, false, false, false]);
  });

  it('should list every runbook with its arguments and summary, then the built-ins, in the usage', () => {
    const lines = capi.usage.split('\n');
    expect(lines.map((l) => /^`([^`]+)`/.exec(l)?.[1])).toEqual([
      '/capi appcred-check',
      '/capi conductor',
      '/capi diagnose',
      '/capi failover LB',
      '/capi haproxy',
      '/capi image-check IMAGE',
      '/capi park',
      '/capi recover',
      '/capi stuck-delete CLUSTER',
      '/capi sweep',
      '/capi status [RUN]',
      '/capi cancel RUN',
      '/capi timeline RUN',
      '/capi doctor',
      '/capi release REASON',
      '/capi help',
    ]);
    expect(lines[6]).toBe(
      '`/capi park` -- Stop capi-mgmt-v2 for maintenance (section 1); /capi recover brings it back',
    );
  });
});

describe('/capi from the loaded runbooks', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'capi-commands-'));
    for (const f of await readdir(COMMANDS)) await copyFile(path.join(COMMANDS, f), path.join(dir, f));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('should offer a new runbook file as a subcommand with its argument count and read-only flag', async () => {
    await writeFile(
      path.join(dir, 'lb-show.yaml'),
      [
        'name: lb-show',
        'summary: Show one load balancer',
        'source: test',
        'read_only: true',
        'params:',
        '  - name: lb',
        '    type: uuid',
        '    env: LB_ID',
        '    description: the load balancer',
        'steps:',
        '  - id: show',
        '    title: Show it',
        '    scope: admin',
        '    run: openstack loadbalancer show "$LB_ID"',
        '',
      ].join('\n'),
    );
    const withExtra = capiCommands((await loadRunbooks(dir)).runbooks.values());
    const lb = '0f968008-4c1e-4d2a-9b7e-2b9d3c4e5f60';
    expect(withExtra.parse(`lb-show ${lb}`)).toEqual({
      kind: 'run',
      runbook: 'lb-show',
      args: [lb],
      readOnly: true,
    });
    expect(isReadOnly(withExtra.parse(`lb-show ${lb}`))).toBe(true);
    expect(withExtra.parse('lb-show')).toMatchObject({ kind: 'invalid', problem: /takes LB/ });
    expect(withExtra.usage).toContain('`/capi lb-show LB` -- Show one load balancer');
    // The table without the file knows nothing of it.
    expect(capi.parse(`lb-show ${lb}`).kind).toBe('invalid');
  });

  it('should refuse at start-up a runbook named like a built-in subcommand', () => {
    const status = { name: 'status', summary: 's', readOnly: true, params: [] };
    expect(() => capiCommands([status])).toThrow(
      /runbook 'status' has the name of a built-in \/capi subcommand/,
    );
  });
});

describe('dispatchCapi', () => {
  function context(): { ctx: CapiContext; replies: string[] } {
    const replies: string[] = [];
    const ctx = {
      userId: 'U0ANYONE01',
      channelId: 'C0INCIDENT',
      reply: async (text: string) => {
        replies.push(text);
      },
      refuse: async (text: string) => {
        replies.push(text);
      },
    } as unknown as CapiContext;
    return { ctx, replies };
  }

  it.each(['constructor', '__proto__', 'hasOwnProperty'])(
    'should answer /capi %s with what was wrong and the usage',
    async (text) => {
      const { ctx, replies } = context();
      await dispatchCapi(ctx, capi, text, async () => true);
      expect(replies).toEqual([`\`${text}\` is not a /capi subcommand\n\n${capi.usage}`]);
    },
  );
});
