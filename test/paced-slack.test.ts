import { WebClient } from '@slack/web-api';
import { describe, expect, it } from 'vitest';
import { ErrorCode } from '../src/errors.js';
import { PacedClientError, PacedSlack, pacedWebClient } from '../src/slack/paced-slack.js';

/** PacedSlack keeps its own 429 and 5xx rules: a WebClient that would pause or retry on its own is refused. */

const TOKEN = ['xoxb', '1010101010', '2020202020202', 'fakeFAKEfakeFAKEfakeFAKE'].join('-');
const URL_ = 'http://127.0.0.1:9/api/';

const paced = (client: WebClient) =>
  new PacedSlack({
    client,
    minPostIntervalMs: 0,
    retryDelaysMs: [],
    updateLimit: { count: 1, perMs: 1 },
    signal: new AbortController().signal,
  });

describe('PacedSlack and its WebClient', () => {
  it('should refuse a client with the WebClient defaults, naming both options and the way to build one', () => {
    const refused = (() => {
      try {
        paced(new WebClient(TOKEN, { slackApiUrl: URL_ }));
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(refused).toBeInstanceOf(PacedClientError);
    expect(refused).toMatchObject({ code: ErrorCode.ConfigInvalid });
    expect(String((refused as Error).message)).toContain(
      'create it with rejectRateLimitedCalls: true and retryConfig: { retries: 0 } (pacedWebClient(token, { slackApiUrl }) does)',
    );
  });

  it('should refuse a client that retries 5xx itself, or queues behind 429s, naming what is missing', () => {
    expect(() => paced(new WebClient(TOKEN, { slackApiUrl: URL_, rejectRateLimitedCalls: true }))).toThrow(
      /create it with retryConfig: \{ retries: 0 \} \(/,
    );
    expect(() => paced(new WebClient(TOKEN, { slackApiUrl: URL_, retryConfig: { retries: 0 } }))).toThrow(
      /create it with rejectRateLimitedCalls: true \(/,
    );
    expect(() =>
      paced(
        new WebClient(TOKEN, {
          slackApiUrl: URL_,
          rejectRateLimitedCalls: true,
          retryConfig: { retries: 2 },
        }),
      ),
    ).toThrow(PacedClientError);
  });

  it('should take a client built with both options, by hand or by pacedWebClient', () => {
    expect(() =>
      paced(
        new WebClient(TOKEN, {
          slackApiUrl: URL_,
          rejectRateLimitedCalls: true,
          retryConfig: { retries: 0 },
        }),
      ),
    ).not.toThrow();
    const client = pacedWebClient(TOKEN, { slackApiUrl: URL_ });
    expect(client.slackApiUrl).toBe(URL_);
    expect(() => paced(client)).not.toThrow();
  });
});
