/**
 * `sudo` on the simulated mgmt VM: passwordless, like a cloud image's default user. It runs the
 * command with the VM's root marker set (k8s-snap refuses to run without it) and does not touch
 * stdin, exactly as NOPASSWD sudo does.
 */
import { spawn } from 'node:child_process';
import { VM_ROOT_ENV } from '../cloud/vm.js';

const WITH_ARG = new Set(['-u', '-g', '-C', '-D', '-h', '-p', '-r', '-t', '-U', '-T']);

function main(argv: readonly string[]): void {
  let i = 0;
  while (i < argv.length) {
    const a = argv[i] ?? '';
    if (a === '--') {
      i += 1;
      break;
    }
    if (!a.startsWith('-')) break;
    i += WITH_ARG.has(a) ? 2 : 1;
  }
  const cmd = argv.slice(i);
  const [file, ...args] = cmd;
  if (file === undefined) {
    process.stderr.write(
      'usage: sudo -h | -K | -k | -V\nusage: sudo [-AbEHknPS] [-u user] command [arg ...]\n',
    );
    process.exitCode = 1;
    return;
  }
  const env = {
    ...process.env,
    [VM_ROOT_ENV]: '1',
    SUDO_USER: process.env.USER ?? 'ubuntu',
    USER: 'root',
    LOGNAME: 'root',
  };
  const child = spawn(file, args, { stdio: 'inherit', env });
  child.once('error', (err: NodeJS.ErrnoException) => {
    process.stderr.write(
      err.code === 'ENOENT' ? `sudo: ${file}: command not found\n` : `sudo: ${err.message}\n`,
    );
    process.exitCode = 1;
  });
  child.once('close', (code, signal) => {
    process.exitCode = signal !== null ? 128 + 1 : (code ?? 1);
  });
}

main(process.argv.slice(2));
