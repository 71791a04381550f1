/** `kubectl` stand-in for the mgmt cluster; the state dir comes from CAPI_SIM_DIR. */
import { runBin } from '../cloud/cli.js';
import { runKubectl } from '../cloud/kubectl.js';
import { simDirFromEnv } from '../cloud/store.js';

runBin('kubectl', () => runKubectl({ dir: simDirFromEnv(), argv: process.argv.slice(2), env: process.env }));
