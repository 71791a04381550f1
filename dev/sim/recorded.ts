/**
 * The simulator serving a recording as a scenario (read-only runbooks only): a real sshd on 127.0.0.1 whose
 * `bash` answers every runbook step (a command carrying CAPI_STEP) with what that step's command printed on
 * the recorded site, and whose PATH has exactly the CLIs the recorded jumphost had. Nothing else is simulated:
 * there is no cloud to change, so the journal stays empty.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseSiteProfile } from '../../src/config/site.js';
import { RECORDING_FILE, readRecording } from '../../src/recording/format.js';
import { JUMPHOST_TOOLS } from '../../src/runbook/tools.js';
import { shellQuote } from '../../src/ssh/quote.js';
import type { SimJumphost, SiteProfileData } from './jumphost.js';
import { startSshd, systemPathWithout } from './sshd.js';

/** A scenario argument naming a recording directory rather than a scenario. */
export function isRecording(scenario: string): boolean {
  return existsSync(path.join(scenario, RECORDING_FILE));
}

/**
 * The executor runs each step as `bash --norc --noprofile -c WRAPPER capi-step SCRIPT NAME=value...`. This
 * `bash` swaps SCRIPT for the replay of the step's recorded answer (and passes the script's sha256, which
 * tells the step's commands apart); every other command runs as it is.
 */
function bashShim(replay: string): string {
  return `#!/bin/sh
# capi-sim (recording): a runbook step's command is answered from the recording; anything else runs as is.
step=
for a do case $a in CAPI_STEP=*) step=\${a#CAPI_STEP=} ;; esac; done
case " $* " in *" capi-step "*) ;; *) step= ;; esac
[ -n "$step" ] || exec /bin/bash "$@"
prev= sha=
for a do
  shift
  if [ "$prev" = capi-step ]; then
    sha=$(printf %s "$a" | sha256sum | cut -d' ' -f1)
    set -- "$@" ${shellQuote(replay)}
  else
    set -- "$@" "$a"
  fi
  prev=$a
done
exec /bin/bash "$@" "CAPI_SIM_SHA=$sha"
`;
}

/** A tool the recorded jumphost had: only recorded steps answer, so a call anywhere else says so. */
function toolStub(tool: string): string {
  return `#!/bin/sh
echo "capi-sim (recording): ${tool} answers only inside recorded runbook steps" >&2
exit 1
`;
}

export async function startRecordedJumphost(opts: {
  readonly recording: string;
  readonly dir: string;
  readonly replayJs: string;
  readonly cleanup: () => Promise<void>;
}): Promise<SimJumphost> {
  const recording = await readRecording(path.resolve(opts.recording));
  const home = path.join(opts.dir, 'home');
  const bin = path.join(opts.dir, 'bin');
  await mkdir(home, { recursive: true });
  await mkdir(bin, { recursive: true });
  const replay = [
    `CAPI_SIM_DIR=${shellQuote(opts.dir)}`,
    `CAPI_SIM_RECORDING=${shellQuote(recording.dir)}`,
    `exec ${shellQuote(process.execPath)} ${shellQuote(opts.replayJs)}`,
  ].join(' ');
  await writeFile(path.join(bin, 'bash'), bashShim(replay), { mode: 0o755 });
  for (const tool of JUMPHOST_TOOLS.filter((t) => recording.meta.tools[t].path !== undefined)) {
    await writeFile(path.join(bin, tool), toolStub(tool), { mode: 0o755 });
  }
  const sshd = await startSshd({
    dir: path.join(opts.dir, 'sshd'),
    homeDir: home,
    pathPrepend: [bin],
    // The recorded jumphost's tools only: none of this machine's.
    systemPath: [await systemPathWithout(opts.dir, JUMPHOST_TOOLS)],
  });
  const profile = parseSiteProfile(recording.meta.profile, `${recording.dir} (recording.yaml profile)`);
  const site = {
    ...profile,
    jumphost: {
      host: sshd.target.host,
      port: sshd.target.port,
      user: sshd.target.user,
      private_key_path: sshd.target.privateKeyPath,
      host_key: sshd.target.hostKey,
    },
  } as SiteProfileData;
  let stopping: Promise<void> | undefined;
  const nothing = (what: string) => () =>
    Promise.reject(new Error(`capi-sim: a recording has no ${what}; read the run's events instead`));
  return {
    target: sshd.target,
    site,
    dir: opts.dir,
    description: `the recording of site ${recording.meta.site} (${recording.meta.origin}, ${recording.meta.recorded_at}): read-only runbooks only`,
    journal: async () => [],
    violations: async () => [],
    state: nothing('cloud state'),
    hold: () => {
      throw new Error('capi-sim: a recording answers at once; nothing can be held');
    },
    mgmtHostKey: nothing('mgmt VM (its steps answer from the recording)'),
    replaceMgmtHostKey: nothing('mgmt VM (its steps answer from the recording)'),
    stop() {
      stopping ??= (async () => {
        await sshd.stop();
        await opts.cleanup();
      })();
      return stopping;
    },
  };
}
