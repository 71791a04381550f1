import { describe, expect, it } from 'vitest';
import { execUserKubeconfigYaml, kubeconfigYaml, SIM_CLIENT_KEY_DATA } from '../dev/sim/cloud/kubeconfig.js';
import { parseKubeconfig } from '../src/engine/kubeconfig.js';
import { CapiError } from '../src/errors.js';

/** `parse: kubeconfig`: what a re-emitted kubeconfig may hold before recover installs it. */

const SERVER = 'https://127.0.0.1:6443';
const admin = kubeconfigYaml(SERVER);

function refusal(text: string): string {
  try {
    parseKubeconfig(text);
  } catch (err) {
    expect(err).toBeInstanceOf(CapiError);
    expect((err as CapiError).code).toBe('capi_kubeconfig_refused');
    const message = (err as CapiError).message;
    // Whatever the refusal, it never repeats the credentials it was handed.
    expect(message).not.toContain(SIM_CLIENT_KEY_DATA.slice(0, 24));
    return message;
  }
  throw new Error('expected the kubeconfig to be refused');
}

describe('parse: kubeconfig', () => {
  it('should accept the admin kubeconfig k8s config prints and show its servers and users, not its keys', () => {
    const view = parseKubeconfig(admin);
    expect(view).toEqual({
      clusters: [{ name: 'k8s', server: SERVER }],
      users: [{ name: 'k8s-user' }],
      current_context: 'k8s',
    });
    expect(JSON.stringify(view)).not.toContain(SIM_CLIENT_KEY_DATA);
  });

  it('should refuse a user whose exec would run a command on the jumphost', () => {
    expect(refusal(execUserKubeconfigYaml(SERVER))).toMatch(
      /^the kubeconfig is refused and not installed: users\[0\]\.user\.exec is a credential plugin: kubectl would run what it names/,
    );
  });

  it('should refuse credential plugins whatever the case of their key, as kubectl ignores it', () => {
    const provider = admin.replace('  user:\n', '  user:\n    Auth-Provider:\n      name: oidc\n');
    expect(refusal(provider)).toMatch(/users\[0\]\.user\.Auth-Provider is a credential plugin/);
    const exec = admin.replace('  user:\n', '  user:\n    EXEC: {command: sh}\n');
    expect(refusal(exec)).toMatch(/users\[0\]\.user\.EXEC is a credential plugin/);
  });

  it('should refuse any key an admin kubeconfig does not hold: files read, TLS skipped, a proxy, a merge key', () => {
    const cases: [string, RegExp][] = [
      [
        admin.replace('    client-key-data:', '    tokenFile: /etc/shadow\n    client-key-data:'),
        /tokenFile/,
      ],
      [
        admin.replace('    server:', '    insecure-skip-tls-verify: true\n    server:'),
        /insecure-skip-tls-verify/,
      ],
      [admin.replace('    server:', '    proxy-url: http://127.0.0.9:3128\n    server:'), /proxy-url/],
      [admin.replace('  user:\n', '  user:\n    <<: {exec: {command: sh}}\n'), /<</],
      [
        admin.replace(`server: ${SERVER}`, 'server: http://127.0.0.1:6443'),
        /server: must be an https:\/\/ URL/,
      ],
    ];
    for (const [text, why] of cases) expect(refusal(text), String(why)).toMatch(why);
  });

  it('should say where a file is not YAML without quoting it, and refuse a key given twice', () => {
    const broken = `${admin}users: [\n  client-key-data: ${SIM_CLIENT_KEY_DATA}\n`;
    expect(refusal(broken)).toMatch(/it is not valid YAML \(line \d+, column \d+\)$/);
    expect(refusal(admin.replace('kind: Config', 'kind: Config\nkind: Config'))).toMatch(/not valid YAML/);
  });
});
