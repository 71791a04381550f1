/** k8s-snap `k8s` on the simulated mgmt VM (only on the VM's PATH, reached through the hop ssh). */
import { runBin } from '../cloud/cli.js';
import { simDirFromEnv } from '../cloud/store.js';
import { runK8s } from '../cloud/vm.js';

runBin('k8s', () => runK8s({ dir: simDirFromEnv(), argv: process.argv.slice(2), env: process.env }));
