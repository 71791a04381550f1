import { Writable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../src/log.js';
import { REDACTED, REDACTED_PRIVATE_KEY } from '../src/redact.js';
import { PEM, pem, slackBot } from './support/secrets.js';

function capture(level = 'info') {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  const logger = createLogger({ level, destination, name: 'capi-test' });
  const text = () => chunks.join('');
  const records = () =>
    text()
      .split('\n')
      .filter((line) => line !== '')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
  return { logger, text, records };
}

describe('createLogger', () => {
  it('should print neither secret and keep the rest when the message and fields hold a key, a token and a password', () => {
    const key = pem('rsa');
    const body = key.split('\n').filter((line) => line !== '' && !line.startsWith('-----'));
    const { logger, text, records } = capture();

    logger.info(
      { output: 'OS_PASSWORD=hunter2', token: 'abc' },
      `step output:\n${key}\nposted with ${slackBot}`,
    );

    const out = text();
    for (const line of body) expect(out).not.toContain(line);
    expect(out).not.toContain(slackBot);
    expect(out).not.toContain('hunter2');
    expect(out).not.toContain('"abc"');
    const [record] = records();
    expect(record?.output).toBe(`OS_PASSWORD=${REDACTED}`);
    expect(record?.token).toBe(REDACTED);
    expect(record?.msg).toContain(`step output:\n${PEM.begin.RSA}`);
    expect(record?.msg).toContain(REDACTED_PRIVATE_KEY);
    expect(record?.msg).toContain(`posted with ${REDACTED}`);
    expect(record?.name).toBe('capi-test');
  });

  it('should redact the message when the secret arrives through a %s argument', () => {
    const { logger, records } = capture();
    logger.info('OS_PASSWORD=%s', 'hunter2');
    expect(records()[0]?.msg).toBe(`OS_PASSWORD=${REDACTED}`);
  });

  it('should redact strings at any depth when command output sits in nested objects and arrays', () => {
    const { logger, text, records } = capture();
    logger.warn(
      { step: { name: 'source openrc', result: { lines: ['ok', 'export OS_PASSWORD="hunter2"'] } } },
      'step done',
    );
    expect(text()).not.toContain('hunter2');
    const step = records()[0]?.step as { result: { lines: string[] } };
    expect(step.result.lines).toEqual(['ok', `export OS_PASSWORD="${REDACTED}"`]);
  });

  it('should censor the value when a field name says it is a secret at any depth', () => {
    const { logger, text, records } = capture();
    logger.info({
      slack: { botToken: 'plain-text', signingSecret: 'also-plain' },
      env: { OS_PASSWORD: 'pw1' },
    });
    expect(text()).not.toMatch(/plain-text|also-plain|pw1/);
    const record = records()[0] as { slack: Record<string, string>; env: Record<string, string> };
    expect(record.slack).toEqual({ botToken: REDACTED, signingSecret: REDACTED });
    expect(record.env.OS_PASSWORD).toBe(REDACTED);
  });

  it('should censor a listed path when the field name itself does not look secret', () => {
    const { logger, text, records } = capture();
    logger.info({ req: { headers: { cookie: 'session=abc123def' } }, headers: { cookie: 'session=zzz999' } });
    expect(text()).not.toMatch(/abc123def|zzz999/);
    expect(records()[0]).toMatchObject({
      req: { headers: { cookie: REDACTED } },
      headers: { cookie: REDACTED },
    });
  });

  it('should redact the message and stack when an error carries a secret', () => {
    const { logger, text, records } = capture();
    const err = new Error('ssh exec failed: OS_PASSWORD=hunter2');
    logger.error({ err }, 'step failed');
    logger.error(err);
    expect(text()).not.toContain('hunter2');
    const [withField, bare] = records();
    const serialized = withField?.err as { type: string; message: string; stack: string };
    expect(serialized.type).toBe('Error');
    expect(serialized.message).toBe(`ssh exec failed: OS_PASSWORD=${REDACTED}`);
    expect(serialized.stack).toContain(`OS_PASSWORD=${REDACTED}`);
    expect(bare?.msg).toBe(`ssh exec failed: OS_PASSWORD=${REDACTED}`);
  });

  it('should log the stack and its cause redacted when an error and its cause carry a token', () => {
    const { logger, text, records } = capture();
    const cause = new Error(`slack refused ${slackBot}`);
    const err = new Error(`posting failed with ${slackBot}`, { cause });
    logger.warn({ err }, 'posting failed');
    expect(text()).not.toContain(slackBot);
    const logged = records()[0]?.err as { type: string; message: string; stack: string };
    expect(logged.type).toBe('Error');
    expect(logged.message).toBe(`posting failed with ${REDACTED}: slack refused ${REDACTED}`);
    // The frames say where it was thrown: this file, and the cause's own stack after "caused by".
    expect(logged.stack.startsWith(`Error: posting failed with ${REDACTED}\n    at `)).toBe(true);
    expect(logged.stack).toContain('log.test.ts:');
    expect(logged.stack).toContain(`caused by: Error: slack refused ${REDACTED}\n`);
  });

  it('should censor the command arguments and name an HTTP request when a library error carries them', () => {
    class ClientRequest {
      readonly header = 'Authorization: Bearer plain-value';
    }
    const { logger, text, records } = capture();
    // ioredis puts the failed command on its errors, AUTH's password included.
    const redis = Object.assign(new Error('WRONGPASS invalid username-password pair'), {
      command: { name: 'auth', args: ['default', 'hunter2'] },
    });
    const http = Object.assign(new Error('socket hang up'), {
      code: 'ECONNRESET',
      request: new ClientRequest(),
    });
    logger.error({ err: redis }, 'redis connection error');
    logger.error({ err: http }, 'slack call failed');
    expect(text()).not.toMatch(/hunter2|plain-value/);
    const [fromRedis, fromHttp] = records();
    expect(fromRedis?.err).toMatchObject({ command: { name: 'auth', args: REDACTED } });
    expect(fromHttp?.err).toMatchObject({ code: 'ECONNRESET', request: '[ClientRequest]' });
  });

  it('should redact child bindings when a child logger is bound to command text', () => {
    const { logger, text, records } = capture();
    const grandchild = logger
      .child({ script: 'openstack --os-password hunter2 server list' })
      .child({ run: 7 });
    grandchild.info('started');
    expect(text()).not.toContain('hunter2');
    expect(records()[0]).toMatchObject({
      script: `openstack --os-password ${REDACTED} server list`,
      run: 7,
      msg: 'started',
    });
  });

  it('should leave the caller object untouched when it redacts a copy', () => {
    const { logger } = capture();
    const fields = { output: 'OS_PASSWORD=hunter2', token: 'abc', nested: { password: 'x' } };
    logger.info(fields, 'done');
    expect(fields).toEqual({ output: 'OS_PASSWORD=hunter2', token: 'abc', nested: { password: 'x' } });
  });

  it('should log instead of throwing when a field refers to itself', () => {
    const { logger, records } = capture();
    const loop: Record<string, unknown> = { name: 'loop' };
    loop.self = loop;
    logger.info({ loop }, 'cyclic');
    expect(records()[0]?.loop).toEqual({ name: 'loop', self: '[Circular]' });
  });

  it('should drop records below the level when a level is given', () => {
    const { logger, records } = capture('warn');
    logger.info('quiet');
    logger.warn('loud');
    expect(records().map((r) => r.msg)).toEqual(['loud']);
  });
});
