import { describe, expect, it } from 'vitest';
import { checkBlockKit } from '../dev/slack/block-kit.js';
import type { StoredApproval } from '../src/runs/approvals.js';
import { APPROVE_ACTION_ID, approvalMessage, confirmText } from '../src/slack/blocks.js';
import { BLOCK_KIT_LIMITS } from '../src/slack/limits.js';
import { approvalRequest, atSecond, ref, T0 } from './support/events.js';

const step = ref('sweep/delete-orphan', 2, 3);
const approval = (targets: readonly string[], over: Partial<StoredApproval> = {}): StoredApproval => ({
  approvalId: 'approval~r-recover-1~sweep%2Fdelete-orphan',
  runId: 'r-recover-1',
  stepId: step.stepId,
  request: approvalRequest(step, { title: 'Delete orphaned amphorae', targets: [...targets] }),
  requestedAt: atSecond(0),
  expiresAt: atSecond(900),
  ...over,
});

interface Button {
  action_id?: string;
  style?: string;
  confirm?: { text: { text: string }; style?: string };
}

function buttons(a: StoredApproval): Button[] {
  const m = approvalMessage(a, new Date(T0));
  expect(checkBlockKit(m)).toEqual([]);
  const actions = (m.blocks as { type: string; elements?: Button[] }[]).find((b) => b.type === 'actions');
  return actions?.elements ?? [];
}

describe('the Approve button of a destructive step', () => {
  it('should be red and ask Slack for a second look naming every target when they fit', () => {
    const [approve] = buttons(approval(['amphora-1 (10.0.0.7)', 'amphora-2 (10.0.0.8)']));
    expect(approve?.action_id).toBe(APPROVE_ACTION_ID);
    expect(approve?.style).toBe('danger');
    expect(approve?.confirm?.style).toBe('danger');
    expect(approve?.confirm?.text.text).toBe(
      '*Delete orphaned amphorae*\nRuns once, exactly as shown above, on 2 targets:\n' +
        '• amphora-1 (10.0.0.7)\n• amphora-2 (10.0.0.8)',
    );
  });

  it('should name as many targets as Slack allows and count the rest when there are many', () => {
    const targets = Array.from(
      { length: 40 },
      (_, i) => `amphora-${i} (3f6c1e9a-0000-4000-8000-${String(i).padStart(12, '0')})`,
    );
    const [approve] = buttons(approval(targets));
    const text = approve?.confirm?.text.text ?? '';
    expect(text.length).toBeLessThanOrEqual(BLOCK_KIT_LIMITS.confirmText);
    expect(text).toContain('• amphora-0 (3f6c1e9a-0000-4000-8000-000000000000)');
    const shown = text.split('\n').filter((l) => l.startsWith('• ')).length;
    expect(shown).toBeGreaterThan(0);
    expect(text.endsWith(`… and ${40 - shown} more`)).toBe(true);
  });

  it('should escape targets so a target cannot mention the channel inside the dialog', () => {
    const text = confirmText('Delete <!channel>', ['<!here> & <@U0EVIL>']);
    expect(text).not.toMatch(/<[!@]/);
    expect(text).toContain('&lt;!here&gt; &amp; &lt;@U0EVIL&gt;');
  });
});
