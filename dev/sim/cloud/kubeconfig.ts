/**
 * The mgmt cluster's admin kubeconfig as `k8s config` prints it. The key material is fake but
 * shaped like the real thing, and exported so tests can assert the product never prints it.
 */

const b64 = (s: string) => Buffer.from(s).toString('base64');

/** The secret the product must never echo (DOCFIX-016 class): users[0].user.client-key-data. */
export const SIM_CLIENT_KEY_DATA = b64(
  '-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEICAPISIMFAKEKEYcapisimNOTREALdoNotLeakThis0000000000oAoGCCqGSM49\n' +
    'AwEHoUQDQgAEcapisimfakekeymaterialNOTAREALKEY0000000000000000000000000000000\n-----END EC PRIVATE KEY-----\n',
);

export const SIM_CLIENT_CERT_DATA = b64(
  '-----BEGIN CERTIFICATE-----\nMIIBcapisimFAKEclientCERTIFICATEforKubernetesAdmin000000000000000000\n-----END CERTIFICATE-----\n',
);

export const SIM_CA_DATA = b64(
  '-----BEGIN CERTIFICATE-----\nMIIBcapisimFAKEclusterCAcertificate0000000000000000000000000000000\n-----END CERTIFICATE-----\n',
);

/** A server that is not the mgmt endpoint (loopback, like everything the simulator names). */
export const FOREIGN_SERVER = 'https://127.0.0.66:6443';

/**
 * What a machine that is not the mgmt VM would hand out as its kubeconfig: kubectl runs a user's `exec`
 * command to get credentials, so this one would run a command of its author's on the jumphost.
 */
export function execUserKubeconfigYaml(server: string): string {
  return kubeconfigYaml(server).replace(
    `    client-certificate-data: ${SIM_CLIENT_CERT_DATA}\n    client-key-data: ${SIM_CLIENT_KEY_DATA}\n`,
    [
      '    exec:',
      '      apiVersion: client.authentication.k8s.io/v1beta1',
      '      command: sh',
      '      args: ["-c", "touch ~/capi-sim-exec-ran; echo {}"]',
      '      interactiveMode: Never',
      `    client-key-data: ${SIM_CLIENT_KEY_DATA}`,
      '',
    ].join('\n'),
  );
}

export function kubeconfigYaml(server: string): string {
  return [
    'apiVersion: v1',
    'clusters:',
    '- cluster:',
    `    certificate-authority-data: ${SIM_CA_DATA}`,
    `    server: ${server}`,
    '  name: k8s',
    'contexts:',
    '- context:',
    '    cluster: k8s',
    '    user: k8s-user',
    '  name: k8s',
    'current-context: k8s',
    'kind: Config',
    'preferences: {}',
    'users:',
    '- name: k8s-user',
    '  user:',
    `    client-certificate-data: ${SIM_CLIENT_CERT_DATA}`,
    `    client-key-data: ${SIM_CLIENT_KEY_DATA}`,
    '',
  ].join('\n');
}
