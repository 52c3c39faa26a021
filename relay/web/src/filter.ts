// The machine list's filter: what a search box over hundreds of machines matches. Pure (no DOM)
// so the unit tests run it as the page does.
import type { Machine } from './api';

/** Whether `machine` matches every whitespace-separated word of `filter`, case-insensitively,
 * anywhere in its name, `user@host:port` or organization. An empty filter matches all. */
export function machineMatches(machine: Machine, filter: string): boolean {
  const haystack = [machine.name, `${machine.username}@${machine.hostname}:${machine.port}`,
    machine.organization ?? ''].join(' ').toLowerCase();
  return filter.toLowerCase().split(/\s+/).filter((word) => word !== '')
    .every((word) => haystack.includes(word));
}
