import { Writable } from 'node:stream';
import type { AuditEvent } from '../../src/ops/audit.js';

export type AuditLine = AuditEvent & { audit: boolean; msg: string };

/** A stream for createAuditLog({ destination }) and the audit lines written to it so far, parsed. */
export function auditSink(): { stream: Writable; events: () => AuditLine[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  return { stream, events: () => lines.map((l) => JSON.parse(l)) };
}
