/**
 * The agent thread's entry (see agent-thread.ts): the same deployment serve loaded, read again from the same
 * environment and files, and an agent with metrics and an audit trail of its own. Logs are JSON pino lines on
 * stdout, redacted, like serve's own.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { z } from 'zod';
import { startAgent } from '../agent/agent.js';
import { loadDeployment } from '../config/deployment.js';
import { createLogger } from '../log.js';
import { createAuditLog } from '../ops/audit.js';
import { Metrics } from '../ops/metrics.js';
import { loadRunbooks } from '../runbook/load.js';
import { agentCheck, agentOptions, loadSites, siteFilesFrom } from './agent.js';
import type { ToThread } from './agent-thread.js';

const port = parentPort;
if (port === null) throw new Error("agent-thread-main.js runs as serve's agent thread only");

const data = z.object({ siteFiles: z.array(z.string()) }).parse(workerData);
const toThread = z.discriminatedUnion('type', [
  z.object({ type: z.literal('check'), id: z.number().int() }),
  z.object({ type: z.literal('metrics'), id: z.number().int() }),
  z.object({ type: z.literal('close') }),
]);

const { config, sites, keys } = await loadDeployment('serve', (c) =>
  loadSites(siteFilesFrom(data.siteFiles, c.siteFile)),
);
const logger = createLogger({ level: config.logLevel, name: 'capi-chatops' }).child({ thread: 'agent' });
const runbooks = await loadRunbooks(config.commandsDir);
// Serve's main thread exports the process's metrics and the ones read from Redis; these are the agent's.
const metrics = new Metrics({ processMetrics: false });
const audit = createAuditLog(config.ops.auditLogFile !== undefined ? { file: config.ops.auditLogFile } : {});
const agent = await startAgent({ ...agentOptions(config, sites, runbooks, keys, logger), metrics, audit });
const check = agentCheck(agent);

port.on('message', (raw: unknown) => {
  const msg: ToThread = toThread.parse(raw);
  if (msg.type === 'close') {
    agent.close().then(
      () => {
        port.postMessage({ type: 'closed' });
        port.close();
      },
      (err: unknown) => {
        logger.error({ err }, 'the agent did not close cleanly');
        port.postMessage({ type: 'closed' });
        port.close();
      },
    );
    return;
  }
  const value = msg.type === 'check' ? check() : metrics.registry.getMetricsAsJSON();
  value.then(
    (v) => port.postMessage({ type: 'answer', id: msg.id, value: v }),
    (err: unknown) => port.postMessage({ type: 'answer', id: msg.id, value: (err as Error).message }),
  );
});
port.postMessage({ type: 'ready', queueNames: [...agent.queueNames] });

// Test hooks (test/serve-agent-thread.test.ts), never set in a deployment: this thread's loop stops for that
// long, to show that serve's Slack front answers all the same; or this thread fails, to show serve stops.
if (process.env.CAPI_TEST_CRASH_AGENT_THREAD === '1') {
  setImmediate(() => {
    throw new Error('the agent thread fails (CAPI_TEST_CRASH_AGENT_THREAD)');
  });
}
const blockMs = Number(process.env.CAPI_TEST_BLOCK_AGENT_THREAD_MS ?? 0);
if (blockMs > 0) {
  port.postMessage({ type: 'blocking', ms: blockMs });
  const until = Date.now() + blockMs;
  while (Date.now() < until) {
    // Busy on purpose: nothing else of this thread runs meanwhile.
  }
}
