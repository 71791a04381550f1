/**
 * A valid site profile as it stands in a site file, with the management VM at 127.0.0.1; `overrides` replace
 * or add top-level fields. The plain object, for writing to YAML or for parseSiteProfile.
 */
export function sampleSiteData(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: 'test',
    openrc: '~/admin-openrc',
    capi_project_id: '0123456789abcdef0123456789abcdef',
    mgmt_server: 'capi-mgmt-v2',
    mgmt_fip: '127.0.0.1',
    mgmt_ssh_user: 'ubuntu',
    mgmt_ssh_key: '~/.ssh/id_ed25519',
    mgmt_kubeconfig: '~/capi-mgmt.kubeconfig',
    workload_cluster: 'capi-test-1',
    ...overrides,
  };
}
