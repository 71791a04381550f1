/**
 * The playground's web server, on 127.0.0.1: the page (web/index.html, web/playground.css and the compiled
 * web/app.ts), the channel's state as server-sent events, the actions a person takes (type a command, click
 * a button), the response_url the bot answers to, and the files it uploads. Only the page's own origin may
 * drive it: /api calls must be JSON (a cross-site form cannot send that without a CORS preflight, which is
 * never granted) and the Host header must name this server (no DNS rebinding).
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { z } from 'zod';
import type { FakeSlack } from '../slack/fake-slack.js';
import type { ChannelView } from './channel.js';
import { Playground } from './playground.js';
import { packageRoot } from './root.js';
import type { PageState } from './web/view-types.js';

const MAX_BODY = 1024 * 1024;
const STATE_DEBOUNCE_MS = 50;
const KEEPALIVE_MS = 15_000;

const CommandRequest = z.object({ user: z.string().min(1).max(40), text: z.string().max(4000) });
const ClickRequest = z.object({
  user: z.string().min(1).max(40),
  ref: z.object({
    messageTs: z.string().regex(/^\d+\.\d+$/),
    blockIndex: z.number().int().min(0).max(100),
    elementIndex: z.number().int().min(-1).max(100),
  }),
});

const SubmitRequest = z.object({
  user: z.string().min(1).max(40),
  viewId: z.string().min(1).max(40),
  /** Per block_id, per action_id: the text typed or the option value chosen (null: none). */
  values: z.record(z.string().max(255), z.record(z.string().max(255), z.string().max(3000).nullable())),
});
const CancelRequest = z.object({ user: z.string().min(1).max(40), viewId: z.string().min(1).max(40) });

const SECURITY_HEADERS = {
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
} as const;

export interface PlaygroundServerOptions {
  readonly fake: FakeSlack;
  readonly view: ChannelView;
  readonly channel: { readonly id: string; readonly name: string };
  readonly requestUrl: string;
  readonly signingSecret: string;
  /** Default 0: any free port. */
  readonly port?: number;
}

export interface PlaygroundServer {
  /** `http://127.0.0.1:PORT/` */
  readonly url: string;
  readonly playground: Playground;
  close(): Promise<void>;
}

export async function startPlaygroundServer(opts: PlaygroundServerOptions): Promise<PlaygroundServer> {
  const root = packageRoot();
  const assets: Record<string, { file: string; type: string }> = {
    '/': { file: path.join(root, 'dev/playground/web/index.html'), type: 'text/html; charset=utf-8' },
    '/playground.css': { file: path.join(root, 'dev/playground/web/playground.css'), type: 'text/css' },
    '/app.js': { file: path.join(root, 'dist/dev/playground/web/app.js'), type: 'text/javascript' },
  };
  const streams = new Set<ServerResponse>();
  let playground: Playground | undefined;
  let pending: NodeJS.Timeout | undefined;
  let port = 0;

  const pageState = (): PageState => ({
    ...opts.view.state(),
    dialogs: playground?.dialogsState() ?? { modals: {}, homes: {} },
  });
  const publish = () => {
    pending = undefined;
    const data = `event: state\ndata: ${JSON.stringify(pageState())}\n\n`;
    for (const res of streams) res.write(data);
  };
  const schedule = () => {
    pending ??= setTimeout(publish, STATE_DEBOUNCE_MS);
  };
  // Every Web API call the bot makes (views.* included) reaches the view, which says so here.
  const unsubscribe = opts.view.onChange(schedule);
  const keepalive = setInterval(() => {
    for (const res of streams) res.write(': keepalive\n\n');
  }, KEEPALIVE_MS);

  const json = (res: ServerResponse, status: number, body: unknown) => {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...SECURITY_HEADERS });
    res.end(JSON.stringify(body));
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, pg: Playground): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const host = req.headers.host ?? '';
    if (host !== `127.0.0.1:${port}` && host !== `localhost:${port}`) {
      return json(res, 421, { error: `this server answers to 127.0.0.1:${port} only` });
    }
    if (req.method === 'GET') {
      const asset = assets[url.pathname];
      if (asset) {
        const content = await readFile(asset.file).catch(() => undefined);
        if (content === undefined)
          return json(res, 500, { error: `missing ${asset.file}: run npm run build:dev` });
        res.writeHead(200, { 'content-type': asset.type, 'cache-control': 'no-store', ...SECURITY_HEADERS });
        return void res.end(content);
      }
      if (url.pathname === '/events') {
        res.writeHead(200, {
          'content-type': 'text/event-stream',
          'cache-control': 'no-store',
          connection: 'keep-alive',
          ...SECURITY_HEADERS,
        });
        res.write(`retry: 1000\nevent: state\ndata: ${JSON.stringify(pageState())}\n\n`);
        streams.add(res);
        req.on('close', () => streams.delete(res));
        return;
      }
      if (url.pathname === '/api/state') return json(res, 200, pageState());
      const file = /^\/files\/(F[0-9]+)$/.exec(url.pathname);
      if (file) {
        const found = opts.fake.files().find((f) => f.id === file[1]);
        if (!found) return json(res, 404, { error: 'no such file' });
        res.writeHead(200, {
          'content-type': 'text/plain; charset=utf-8',
          'content-disposition': `inline; filename="${found.filename.replace(/[^A-Za-z0-9._-]/g, '_')}"`,
          ...SECURITY_HEADERS,
        });
        return void res.end(found.bytes);
      }
      return json(res, 404, { error: 'not found' });
    }
    if (req.method !== 'POST') return json(res, 405, { error: 'GET or POST' });
    if (!(req.headers['content-type'] ?? '').toLowerCase().startsWith('application/json')) {
      return json(res, 415, { error: 'send application/json' });
    }
    let body: unknown;
    try {
      body = JSON.parse((await readBody(req)).toString('utf8'));
    } catch (err) {
      return json(res, 400, { error: `not JSON: ${(err as Error).message}` });
    }
    const response = /^\/response\/([A-Za-z0-9_-]{10,64})$/.exec(url.pathname);
    if (response) {
      const answer = pg.respond(response[1] as string, body);
      return json(res, answer.status, answer.body);
    }
    if (url.pathname === '/api/command') {
      const parsed = CommandRequest.safeParse(body);
      if (!parsed.success) return json(res, 400, { error: 'send {"user": "U…", "text": "/capi …"}' });
      const outcome = await pg.command(parsed.data.user, parsed.data.text);
      return json(res, outcome.ok ? 200 : 400, outcome);
    }
    if (url.pathname === '/api/click') {
      const parsed = ClickRequest.safeParse(body);
      if (!parsed.success)
        return json(res, 400, { error: 'send {"user": "U…", "ref": {messageTs, blockIndex, elementIndex}}' });
      const outcome = await pg.click(parsed.data.user, parsed.data.ref);
      return json(res, outcome.ok ? 200 : 409, outcome);
    }
    if (url.pathname === '/api/submit') {
      const parsed = SubmitRequest.safeParse(body);
      if (!parsed.success)
        return json(res, 400, {
          error: 'send {"user": "U…", "viewId": "V…", "values": {block: {action: text}}}',
        });
      const outcome = await pg.submit(parsed.data.user, parsed.data.viewId, parsed.data.values);
      return json(res, outcome.ok ? 200 : 409, outcome);
    }
    if (url.pathname === '/api/home') {
      const parsed = CancelRequest.pick({ user: true }).safeParse(body);
      if (!parsed.success) return json(res, 400, { error: 'send {"user": "U…"}' });
      const outcome = await pg.openHome(parsed.data.user);
      return json(res, outcome.ok ? 200 : 502, outcome);
    }
    if (url.pathname === '/api/cancel') {
      const parsed = CancelRequest.safeParse(body);
      if (!parsed.success) return json(res, 400, { error: 'send {"user": "U…", "viewId": "V…"}' });
      const outcome = pg.cancel(parsed.data.user, parsed.data.viewId);
      return json(res, outcome.ok ? 200 : 409, outcome);
    }
    return json(res, 404, { error: 'not found' });
  };

  const server = createServer((req, res) => {
    const pg = playground;
    if (!pg) return json(res, 503, { error: 'starting' });
    handle(req, res, pg).catch((err: unknown) => {
      if (!res.headersSent) json(res, 500, { error: String(err) });
      else res.end();
    });
  });
  server.listen(opts.port ?? 0, '127.0.0.1');
  try {
    await once(server, 'listening');
  } catch (err) {
    unsubscribe();
    clearInterval(keepalive);
    throw err;
  }
  port = (server.address() as AddressInfo).port;
  const base = `http://127.0.0.1:${port}/`;
  playground = new Playground({
    fake: opts.fake,
    view: opts.view,
    channel: opts.channel,
    requestUrl: opts.requestUrl,
    signingSecret: opts.signingSecret,
    responseBase: `${base}response/`,
    onChange: schedule,
  });

  return {
    url: base,
    playground,
    async close() {
      unsubscribe();
      clearInterval(keepalive);
      clearTimeout(pending);
      for (const res of streams) res.end();
      streams.clear();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error(`body over ${MAX_BODY} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
