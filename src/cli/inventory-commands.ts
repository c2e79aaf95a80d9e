import type { Command } from 'commander';
import type { Machine } from '../core/types.ts';
import type { ApiClient } from './client/api-client.ts';
import { buildAnsibleInventory } from './client/ansible-inventory.ts';
import { clientFromEnvironment } from './client/client-settings.ts';
import { printJson, withExamples } from './client/output.ts';

const PAGE = 500;

/** Every machine, page by page. */
async function allMachines(client: ApiClient): Promise<Machine[]> {
  const machines: Machine[] = [];
  for (;;) {
    const page = await client.get<{ items: Machine[]; total: number }>('/api/v1/machines', { query: { limit: PAGE, offset: machines.length, sort: 'id', order: 'asc' } });
    machines.push(...page.items);
    if (page.items.length < PAGE || machines.length >= page.total) return machines;
  }
}

/** `metal inventory`: the fleet as an Ansible dynamic inventory. */
export function registerInventoryCommands(program: Command): void {
  withExamples(
    program
      .command('inventory')
      .description('print the machines as an Ansible dynamic inventory (JSON; groups status_*, vendor_*, model_*)')
      .option('--ansible', 'Ansible dynamic inventory format (the default)')
      .option('--list', 'the whole inventory, as Ansible asks an inventory script for it')
      .option('--host <host>', 'one host’s variables, as Ansible asks an inventory script for them'),
    'metal inventory --ansible | jq ._meta.hostvars',
    "printf '#!/bin/sh\\nexec metal inventory \"$@\"\\n' > metal-inventory && chmod +x metal-inventory && ansible -i ./metal-inventory status_ready -m ping",
  ).action(async (opts: { ansible?: boolean; list?: boolean; host?: string }) => {
    const inventory = buildAnsibleInventory(await allMachines(clientFromEnvironment()));
    if (opts.host !== undefined) return printJson(Object.hasOwn(inventory._meta.hostvars, opts.host) ? inventory._meta.hostvars[opts.host] : {});
    printJson(inventory);
  });
}
