import { ParamError } from '../errors.js';
import type { Runbook } from './model.js';

/**
 * The only shapes a value from chat or CLI output may take before it reaches a remote command.
 * Strict patterns, not escaping, are the first line of defence: a value that does not match never
 * reaches the jumphost (quoting in the executor is the second).
 */
export const PARAM_TYPES = {
  'project-id': { pattern: /^[0-9a-f]{32}$/, hint: 'a 32-character lowercase hex OpenStack project id' },
  ipv4: {
    pattern: /^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$/,
    hint: 'an IPv4 address such as 192.0.2.10',
  },
  dns1123: {
    pattern: /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/,
    hint: 'a DNS-1123 name: lowercase letters, digits and "-", starting and ending alphanumeric, at most 63 characters',
  },
  uuid: {
    pattern: /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    hint: 'a lowercase UUID such as 0f968008-4c1e-4d2a-9b7e-2b9d3c4e5f60',
  },
  'keystone-id': {
    pattern: /^[0-9a-f]{32}$/,
    hint: 'a 32-character lowercase hex keystone id (a user or project id)',
  },
  'juju-unit': {
    pattern: /^[a-z][a-z0-9]*(-[a-z0-9]+)*\/(0|[1-9][0-9]{0,5})$/,
    hint: 'a juju unit name such as keystone/1 (application/number, as juju status lists it)',
  },
  'os-name': {
    pattern: /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/,
    hint: 'an OpenStack name or id made of letters, digits, ".", "_" and "-" (at most 128), e.g. ubuntu-jammy-kube-v1.32.13; use the id when the name has other characters',
  },
} as const;

export type ParamType = keyof typeof PARAM_TYPES;
export const PARAM_TYPE_NAMES = Object.keys(PARAM_TYPES) as ParamType[];

export function checkParamValue(name: string, type: ParamType, value: unknown): string {
  const spec = PARAM_TYPES[type];
  if (typeof value !== 'string' || !spec.pattern.test(value)) {
    const shown =
      typeof value === 'string'
        ? JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value)
        : String(value);
    throw new ParamError(name, `${name} must be ${spec.hint}; got ${shown}. Nothing was run.`);
  }
  return value;
}

/** The arguments of a run, each checked against its parameter's type; refused before anything runs. */
export function validateParams(runbook: Runbook, args: readonly string[]): Record<string, string> {
  if (args.length !== runbook.params.length) {
    const usage = [runbook.name, ...runbook.params.map((p) => p.name.toUpperCase())].join(' ');
    throw new ParamError(
      runbook.params[args.length]?.name ?? 'arguments',
      `${runbook.name} takes ${runbook.params.length} argument(s), got ${args.length}. Usage: ${usage}. Nothing was run.`,
    );
  }
  const out: Record<string, string> = {};
  runbook.params.forEach((p, i) => {
    out[p.name] = checkParamValue(p.name, p.type, args[i]);
  });
  return out;
}
