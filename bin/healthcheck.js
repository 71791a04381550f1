#!/usr/bin/env node
// The container's health probe: GET http://127.0.0.1:$METRICS_PORT<path> (default /healthz), exit 0 on a 2xx.
// `node bin/healthcheck.js /readyz` asks for readiness instead (Redis, Slack auth.test, the agent's workers).
const path = process.argv[2] ?? '/healthz';
const port = process.env.METRICS_PORT || '9464';
try {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { signal: AbortSignal.timeout(4000) });
  process.exitCode = res.ok ? 0 : 1;
} catch {
  process.exitCode = 1;
}
