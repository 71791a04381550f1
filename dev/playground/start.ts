/**
 * The whole playground: the stack (simulated jumphost, fake Slack, the real serve), the channel view over
 * the fake, and the web server with the page. One call to start, one to stop.
 */
import { CHANNEL, PEOPLE } from './cast.js';
import { ChannelView } from './channel.js';
import { type PlaygroundServer, startPlaygroundServer } from './server.js';
import { type Stack, type StackOptions, startStack } from './stack.js';

export interface PlaygroundRun {
  readonly stack: Stack;
  readonly view: ChannelView;
  readonly server: PlaygroundServer;
  stop(): Promise<void>;
}

export async function startPlayground(
  opts: StackOptions & { readonly port?: number },
): Promise<PlaygroundRun> {
  const stack = await startStack(opts);
  const view = new ChannelView({
    fake: stack.fake,
    channel: CHANNEL,
    people: PEOPLE,
    site: stack.siteName,
    scenario: opts.scenario,
    scenarioDescription: stack.scenarioDescription,
  });
  let server: PlaygroundServer;
  try {
    server = await startServerOn(opts.port, {
      fake: stack.fake,
      view,
      channel: CHANNEL,
      requestUrl: stack.requestUrl,
      signingSecret: stack.signingSecret,
    });
  } catch (err) {
    view.close();
    await stack.stop();
    throw err;
  }
  return {
    stack,
    view,
    server,
    async stop() {
      await server.close();
      view.close();
      await stack.stop();
    },
  };
}

/** The asked-for port when it is free, any free port otherwise (a second demo must still start). */
async function startServerOn(
  port: number | undefined,
  opts: Omit<Parameters<typeof startPlaygroundServer>[0], 'port'>,
): Promise<PlaygroundServer> {
  if (port === undefined || port === 0) return startPlaygroundServer(opts);
  try {
    return await startPlaygroundServer({ ...opts, port });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    return startPlaygroundServer(opts);
  }
}
