/** Read-only runs have their own queue next to each site queue, so they never hold a recovery's slot. */
export function readOnlyQueue(queue: string): string {
  return `${queue}-readonly`;
}
