/** Read-only runs have their own queue next to each site queue, so they never hold a recovery's slot. */
export function readOnlyQueue(queue: string): string {
  return `${queue}-readonly`;
}

/** The pub/sub channel on which RunService announces a cancel to the agents (the run id is the message). */
export function cancelChannel(prefix: string): string {
  return `${prefix}:cancels`;
}
