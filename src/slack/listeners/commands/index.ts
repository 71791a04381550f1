import { type CapiCommands, isReadOnly } from '../../command.js';
import type { CapiContext } from '../../context.js';
import { cancelCommand } from './cancel.js';
import { doctorCommand } from './doctor.js';
import { pickCommand } from './pick.js';
import { releaseCommand } from './release.js';
import { runCommand } from './run.js';
import { statusCommand } from './status.js';
import { timelineCommand } from './timeline.js';

/**
 * Routes a parsed /capi command to its handler after the operator check. The Bolt listener has
 * already acked: everything here reports through ctx.reply or the run's thread.
 */
export async function dispatchCapi(
  ctx: CapiContext,
  commands: CapiCommands,
  text: string,
  isOperator: () => Promise<boolean>,
): Promise<void> {
  const command = commands.parse(text);
  if (command.kind === 'invalid') {
    await ctx.refuse(`${command.problem}\n\n${commands.usage}`);
    return;
  }
  if (!isReadOnly(command) && !(await isOperator())) {
    await ctx.refuse(
      'Only CAPI_OPERATORS may start or cancel runs and release a held site; `/capi diagnose`, `doctor`, `status`, `timeline` and `help` are open to everyone.',
    );
    return;
  }
  switch (command.kind) {
    case 'help':
      await ctx.reply(commands.usage);
      return;
    case 'run':
      await runCommand(ctx, command.runbook, command.args);
      return;
    case 'pick':
      await pickCommand(ctx, command.runbook);
      return;
    case 'status':
      await statusCommand(ctx, command.runId);
      return;
    case 'cancel':
      await cancelCommand(ctx, command.runId);
      return;
    case 'timeline':
      await timelineCommand(ctx, command.runId);
      return;
    case 'doctor':
      await doctorCommand(ctx);
      return;
    case 'release':
      await releaseCommand(ctx, command.reason);
      return;
  }
}
