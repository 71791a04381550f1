/** Field shapes several environment modules share: true/false flags, TCP ports and file paths. */
import path from 'node:path';
import { z } from 'zod';

export const booleanSchema = z
  .enum(['true', 'false'], { error: 'must be true or false' })
  .transform((v) => v === 'true');

export const portSchema = (example: number) =>
  z
    .string()
    .refine((v) => /^\d{1,5}$/.test(v) && Number(v) >= 1 && Number(v) <= 65535, {
      error: `must be a TCP port 1-65535, e.g. ${example}`,
    })
    .transform(Number);

/** A file's path, resolved against the working directory; its contents pasted by mistake are refused unshown. */
export const pathSchema = (what: string) =>
  z
    .string()
    .refine((v) => !/[\r\n]/.test(v) && !v.includes('-----BEGIN'), {
      error: `must be the path of ${what}, not its contents`,
    })
    .refine((v) => !v.startsWith('~'), {
      error: 'must not start with ~: it is not expanded here; use an absolute path such as /home/ubuntu/...',
    })
    .transform((v) => path.resolve(v));
