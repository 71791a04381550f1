/**
 * The last doctor report of each site (from `/capi doctor` or `capi-chatops doctor`), for the Home tab: one key
 * per site, replaced by the next report. Read back through its schema: anything in Redis is untrusted.
 */
import { type DoctorReport, DoctorReportSchema } from '../doctor/report.js';
import type { RedisClient } from '../redis/connection.js';

export class DoctorReports {
  constructor(
    private readonly redis: RedisClient,
    private readonly prefix: string,
  ) {}

  private key(site: string): string {
    return `${this.prefix}:doctor:${site}`;
  }

  async save(report: DoctorReport): Promise<void> {
    const valid = DoctorReportSchema.parse(report);
    await this.redis.set(this.key(valid.site), JSON.stringify(valid));
  }

  /** The last report of each of these sites that has a readable one. */
  async last(sites: readonly string[]): Promise<Map<string, DoctorReport>> {
    const out = new Map<string, DoctorReport>();
    if (sites.length === 0) return out;
    const raw = await this.redis.mget(...sites.map((s) => this.key(s)));
    sites.forEach((site, i) => {
      const text = raw[i];
      if (text === null || text === undefined) return;
      try {
        const parsed = DoctorReportSchema.safeParse(JSON.parse(text));
        if (parsed.success && parsed.data.site === site) out.set(site, parsed.data);
      } catch {
        // Not JSON: not ours to show.
      }
    });
    return out;
  }
}
