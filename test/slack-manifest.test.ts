import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { BOT_SCOPES } from '../src/doctor/slack.js';

/**
 * slack/manifest.yaml against the fields Slack's app manifest accepts (docs.slack.dev, "App manifest
 * reference"), strict: a misspelt or unknown key fails here instead of at "Create New App". Then what the
 * product needs of it: the scopes of every Web API method the code calls, interactivity for buttons and
 * dialogs, the Home tab and its event.
 */

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const url = z.url({ protocol: /^https$/ });

const manifestSchema = z.strictObject({
  _metadata: z.strictObject({ major_version: z.number().int(), minor_version: z.number().int() }).optional(),
  display_information: z.strictObject({
    name: z.string().min(1).max(35),
    description: z.string().max(140).optional(),
    long_description: z.string().min(174).max(4000).optional(),
    background_color: z
      .string()
      .regex(/^#[0-9a-fA-F]{3}([0-9a-fA-F]{3})?$/)
      .optional(),
  }),
  features: z
    .strictObject({
      app_home: z
        .strictObject({
          home_tab_enabled: z.boolean().optional(),
          messages_tab_enabled: z.boolean().optional(),
          messages_tab_read_only_enabled: z.boolean().optional(),
        })
        .optional(),
      bot_user: z
        .strictObject({ display_name: z.string().min(1).max(80), always_online: z.boolean().optional() })
        .optional(),
      shortcuts: z
        .array(
          z.strictObject({
            name: z.string().max(24),
            callback_id: z.string().max(255),
            description: z.string().max(150),
            type: z.enum(['message', 'global']),
          }),
        )
        .max(10)
        .optional(),
      slash_commands: z
        .array(
          z.strictObject({
            command: z.string().regex(/^\/[a-z0-9_-]{1,31}$/),
            url: url.optional(),
            description: z.string().min(1).max(2000),
            usage_hint: z.string().max(1000).optional(),
            should_escape: z.boolean().optional(),
          }),
        )
        .max(50)
        .optional(),
      unfurl_domains: z.array(z.string()).max(5).optional(),
    })
    .optional(),
  oauth_config: z
    .strictObject({
      redirect_urls: z.array(url).max(1000).optional(),
      scopes: z
        .strictObject({
          bot: z
            .array(z.string().regex(/^[a-z_.]+(:[a-z_.]+)*$/))
            .max(255)
            .optional(),
          user: z.array(z.string()).max(255).optional(),
        })
        .optional(),
      token_management_enabled: z.boolean().optional(),
    })
    .optional(),
  settings: z
    .strictObject({
      allowed_ip_address_ranges: z.array(z.string()).max(10).optional(),
      event_subscriptions: z
        .strictObject({
          request_url: url.optional(),
          bot_events: z
            .array(z.string().regex(/^[a-z_]+$/))
            .max(100)
            .optional(),
          user_events: z.array(z.string()).max(100).optional(),
          metadata_subscriptions: z.array(z.unknown()).optional(),
        })
        .optional(),
      interactivity: z
        .strictObject({
          is_enabled: z.boolean(),
          request_url: url.optional(),
          message_menu_options_url: url.optional(),
        })
        .optional(),
      org_deploy_enabled: z.boolean().optional(),
      socket_mode_enabled: z.boolean().optional(),
      token_rotation_enabled: z.boolean().optional(),
      is_hosted: z.boolean().optional(),
      function_runtime: z.enum(['remote', 'slack']).optional(),
    })
    .optional(),
});

const manifest = manifestSchema.parse(
  parseYaml(readFileSync(path.join(ROOT, 'slack/manifest.yaml'), 'utf8')),
);

/** The bot scope each Web API method the product calls needs (none for views.*). */
const SCOPE_OF: Readonly<Record<string, string | null>> = {
  'chat.postMessage': 'chat:write',
  'chat.postEphemeral': 'chat:write',
  'chat.update': 'chat:write',
  'files.uploadV2': 'files:write',
  'usergroups.users.list': 'usergroups:read',
  // channels:read for public channels; groups:read (also granted) for private incident channels.
  'conversations.members': 'channels:read',
  'conversations.info': 'channels:read',
  'views.open': null,
  'views.update': null,
  'views.publish': null,
  'auth.test': null,
};

function sourcesUnder(dir: string): string[] {
  return readdirSync(path.join(ROOT, dir), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => readFileSync(path.join(ROOT, dir, f), 'utf8'));
}

describe('slack/manifest.yaml', () => {
  it('should use only fields Slack accepts, within their limits', () => {
    expect(manifest.display_information.name).toBe('capi-chatops');
    expect(
      manifestSchema.safeParse({ ...manifest, settings: { ...manifest.settings, interactive: true } })
        .success,
    ).toBe(false);
  });

  it('should grant the scope of every Web API method the product calls, and no method without a known scope', () => {
    const called = new Set(
      sourcesUnder('src').flatMap((text) =>
        [
          ...text.matchAll(
            /\bclient\.((?:chat|files|usergroups|views|auth|users|conversations)\.[a-zA-Z0-9.]+?)\(/g,
          ),
        ].map((m) => m[1] as string),
      ),
    );
    expect([...called].sort()).toEqual(
      expect.arrayContaining(['chat.postMessage', 'views.open', 'views.publish']),
    );
    const granted = new Set(manifest.oauth_config?.scopes?.bot ?? []);
    for (const method of called) {
      expect(Object.keys(SCOPE_OF), `${method} has no known scope in this test`).toContain(method);
      const scope = SCOPE_OF[method];
      if (scope) expect([...granted], `${method} needs ${scope}`).toContain(scope);
    }
  });

  it('should list the same bot scopes doctor checks the token for', () => {
    expect([...BOT_SCOPES].sort()).toEqual([...(manifest.oauth_config?.scopes?.bot ?? [])].sort());
  });

  it('should enable the Home tab with its event, and interactivity for buttons and dialogs, at /slack/events', () => {
    expect(manifest.features?.app_home?.home_tab_enabled).toBe(true);
    expect(manifest.settings?.event_subscriptions?.bot_events).toContain('app_home_opened');
    expect(manifest.settings?.interactivity?.is_enabled).toBe(true);
    const urls = [
      manifest.settings?.event_subscriptions?.request_url,
      manifest.settings?.interactivity?.request_url,
      ...(manifest.features?.slash_commands ?? []).map((c) => c.url),
    ];
    expect(new Set(urls.map((u) => (u === undefined ? u : new URL(u).pathname)))).toEqual(
      new Set(['/slack/events']),
    );
    expect(manifest.features?.slash_commands?.map((c) => c.command)).toEqual(['/capi']);
  });
});
