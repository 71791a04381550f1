/** `openstack` stand-in; the state dir comes from CAPI_SIM_DIR (set by the jumphost wrapper). */
import { runBin } from '../cloud/cli.js';
import { runOpenstack } from '../cloud/openstack.js';
import { simDirFromEnv } from '../cloud/store.js';

runBin('openstack', () =>
  runOpenstack({ dir: simDirFromEnv(), argv: process.argv.slice(2), env: process.env }),
);
