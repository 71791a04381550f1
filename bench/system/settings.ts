/** Every knob of `npm run bench:system`, written to bench/RESULTS.md with the results. */

export interface SystemBenchSettings {
  /** (1) open-loop /capi load: rate, warm-up and measured seconds, the subcommand sent. */
  readonly ack: {
    readonly ratePerS: number;
    readonly warmupS: number;
    readonly measureS: number;
    readonly text: string;
  };
  /** (2)(5) steps of `true` per run, and how often the floor and the product run are repeated. */
  readonly steps: { readonly count: number; readonly repeats: number };
  /** (3) runs started one after the other, each in its own channel, on an otherwise idle serve. */
  readonly lifeSamples: number;
  /** (4) concurrent `recover` runs, one per simulated site and channel; (1) uses the level `ackRunsLevel`. */
  readonly levels: readonly number[];
  readonly ackRunsLevel: number;
  /**
   * At each level, the product and its floors take turns (A B A B) while the runs go: this many turns each,
   * for the /capi load (measureS split between them) and for the steps (one `bench-steps` run, one floor).
   */
  readonly turns: number;
  readonly recover: { readonly scenario: string; readonly timeScale: number };
  /** Niceness of every simulated site's sshd and what it forks (the simulated cloud's CLIs). */
  readonly simNice: number;
  /** The fake Slack's limits: chat.postMessage per channel per second (burst 3), and per method per minute. */
  readonly slack: {
    readonly postPerChannelPerS: number;
    readonly methodLimitsPerMinute: Readonly<Record<string, number>>;
  };
  /** How long runs may take, and their threads after them, before the bench reports what is missing. */
  readonly runTimeoutS: number;
  readonly settleTimeoutS: number;
}

export const FULL: SystemBenchSettings = {
  ack: { ratePerS: 50, warmupS: 5, measureS: 20, text: 'status' },
  steps: { count: 50, repeats: 3 },
  lifeSamples: 10,
  levels: [1, 5, 20, 50],
  ackRunsLevel: 20,
  turns: 2,
  recover: { scenario: 'outage', timeScale: 0.02 },
  simNice: 19,
  slack: {
    postPerChannelPerS: 1,
    // Slack's published tiers (api.slack.com/docs/rate-limits): chat.update Tier 3 (50+/min),
    // chat.postEphemeral and the file upload steps Tier 4 (100+/min), usergroups.users.list Tier 2 (20+/min).
    methodLimitsPerMinute: {
      'chat.update': 50,
      'chat.postEphemeral': 100,
      'files.getUploadURLExternal': 100,
      'files.completeUploadExternal': 100,
      'usergroups.users.list': 20,
    },
  },
  runTimeoutS: 600,
  settleTimeoutS: 600,
};

/** `-- --quick`: every part once, tiny, to check the script end to end (numbers mean nothing). */
export const QUICK: SystemBenchSettings = {
  ...FULL,
  ack: { ...FULL.ack, ratePerS: 10, warmupS: 1, measureS: 2 },
  steps: { count: 5, repeats: 1 },
  lifeSamples: 2,
  levels: [2],
  ackRunsLevel: 2,
  runTimeoutS: 180,
  settleTimeoutS: 180,
};
