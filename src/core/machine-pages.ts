import type { MachineConditions, MachineStore } from './ports.ts';
import type { Machine } from './types.ts';

/** Machines read a page by a pass over the fleet. */
export const MACHINE_PAGE = 500;

/**
 * Every machine meeting `conditions`, a page at a time, by id (MachineStore.scan): the way a
 * fleet-wide pass reads the fleet, each page costing the same however far in it is.
 */
export async function* machinePages(machines: Pick<MachineStore, 'scan'>, conditions: MachineConditions = {}, size = MACHINE_PAGE): AsyncGenerator<Machine[]> {
  for (let afterId = 0; ; ) {
    const page = await machines.scan(conditions, afterId, size);
    if (page.length > 0) yield page;
    if (page.length < size) return;
    afterId = page[page.length - 1]!.id;
  }
}
