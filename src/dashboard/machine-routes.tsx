import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { toHttpError } from '../http/error-handler.ts';
import { DomainError, InvalidInputError } from '../core/errors.ts';
import { PowerError } from '../power/power-error.ts';
import type { DashboardDeps } from './dashboard-deps.ts';
import { MachineLive, MachinePage, type MachineData } from './pages/machine-page.tsx';
import { field, pageContext, queryParam, sendHtml, textareaValue } from './render.ts';
import { machineRef } from '../core/machine-service.ts';
import { ENTRY_FILE } from '../core/config-files.ts';

type Tag = { Params: { tag: string } };

const NOTICES: Record<string, string> = {
  saved: 'Saved.',
  'identity-accepted': 'Identity claim accepted.',
  'identity-rejected': 'Identity claim rejected.',
  power: 'Done: the BMC answered; the power state below is the state after the action.',
  'boot-build': 'The machine now points at that build: it boots it at its next boot.',
};

/** Most file fields a form is read for (the configuration's own limit is lower and checked by the core). */
const MAX_FORM_FILES = 100;

/**
 * The configuration's other files as the form sends them: `file_name_<n>`, `file_text_<n>` and
 * `file_remove_<n>` (a ticked box drops the file), in the order of `n`. A slot left empty is skipped.
 */
function formFiles(body: unknown): Array<{ name: string; text: string }> {
  if (typeof body !== 'object' || body === null) return [];
  const slots = Object.keys(body)
    .map((k) => /^file_name_(\d{1,3})$/.exec(k)?.[1])
    .filter((n): n is string => n !== undefined)
    .map(Number)
    .sort((a, b) => a - b)
    .slice(0, MAX_FORM_FILES);
  return slots
    .filter((n) => field(body, `file_remove_${n}`) !== 'yes')
    .map((n) => ({ name: field(body, `file_name_${n}`).trim(), text: textareaValue(field(body, `file_text_${n}`)) }))
    .filter((f) => f.name !== '' || f.text.trim() !== '');
}

/**
 * The configuration map a form stands for (the core checks it): the entry text plus the other
 * files; null when everything is empty.
 */
function filesOfForm(entry: string, files: Array<{ name: string; text: string }>): Record<string, string> | null {
  if (files.length === 0) return entry.trim() === '' ? null : { [ENTRY_FILE]: entry };
  const map: Record<string, string> = { [ENTRY_FILE]: entry };
  for (const f of files) {
    if (f.name === '') throw new InvalidInputError('a file has text but no name: give it a name such as hardware.nix, or empty it', { field: 'nixos_files' });
    if (Object.hasOwn(map, f.name)) throw new InvalidInputError(`two files are named ${JSON.stringify(f.name)}`, { field: 'nixos_files' });
    map[f.name] = f.text;
  }
  return map;
}

/** Power actions that interrupt a running machine: the form must carry `confirm=yes`. */
const CONFIRMED = new Set(['off', 'cycle', 'reset']);

/** The machine page and its actions: save, build, delete. Refused actions re-show the page with the reason. */
export function registerMachineRoutes(app: FastifyInstance, deps: DashboardDeps): void {
  async function load(tag: string, extra: Partial<MachineData> = {}): Promise<MachineData> {
    const machine = await deps.machines.get(tag);
    const [builds, events, imageBuildId, power, bootable] = await Promise.all([
      deps.reads.builds.recent(10, machine.id),
      deps.reads.events.recent(30, machine.id),
      deps.reads.machines.imageBuildId(machine.id),
      deps.power.states([machine.id]),
      deps.machineImages?.bootableBuilds(machine.id),
    ]);
    const profiles = deps.fleet ? (await deps.fleet.profiles.list()).map((p) => p.name) : undefined;
    return { machine, builds, events, imageBuildId, power: power.get(machine.id), ...(bootable ? { bootable } : {}), ...(profiles ? { profiles } : {}), ...extra };
  }

  /** Shows the page again with an action's domain error; other errors go to the error handler. */
  async function refused(request: FastifyRequest<Tag>, reply: FastifyReply, err: unknown, form?: MachineData['form']): Promise<FastifyReply> {
    if (err instanceof PowerError) {
      const data = await load(request.params.tag, { error: err.message });
      return sendHtml(reply.code(toHttpError(err).status), <MachinePage data={data} page={pageContext(request)} />);
    }
    if (!(err instanceof DomainError) || err.code === 'not_found' || err.code === 'forbidden' || err.code === 'unauthorized') throw err;
    const data = await load(request.params.tag, { error: err.message, ...(form ? { form } : {}) });
    return sendHtml(reply.code(toHttpError(err).status), <MachinePage data={data} page={pageContext(request)} />);
  }

  const path = (tag: string) => `/machines/${encodeURIComponent(machineRef(tag))}`;

  app.get<Tag>('/machines/:tag', { config: { access: 'viewer' } }, async (request, reply) => {
    const notice = NOTICES[queryParam(request, 'notice') ?? ''];
    const data = await load(request.params.tag, notice ? { notice } : {});
    const page = pageContext(request);
    if (queryParam(request, 'fragment') === 'live') return sendHtml(reply, <MachineLive data={data} page={page} />, true);
    return sendHtml(reply, <MachinePage data={data} page={page} />);
  });

  app.post<Tag>('/machines/:tag', { config: { access: 'operator' } }, async (request, reply) => {
    const form = {
      hostname: field(request.body, 'hostname').trim(),
      description: textareaValue(field(request.body, 'description')),
      nixos_config: textareaValue(field(request.body, 'nixos_config')),
      files: formFiles(request.body),
      profile: field(request.body, 'profile').trim(),
    };
    // The profile menu is only in forms that show it: a form without it leaves the profile alone.
    const withProfile = field(request.body, 'profile_field') === '1';
    try {
      const machine = await deps.machines.update(
        request.params.tag,
        {
          ...(withProfile ? { profile: form.profile === '' ? null : form.profile } : {}),
          hostname: form.hostname === '' ? null : form.hostname,
          description: form.description.trim() === '' ? null : form.description,
          nixos_files: filesOfForm(form.nixos_config, form.files),
        },
        request.actor,
      );
      return reply.redirect(`${path(machine.service_tag)}?notice=saved`, 303);
    } catch (err) {
      return refused(request, reply, err, form);
    }
  });

  app.post<Tag>('/machines/:tag/build', { config: { access: 'operator' } }, async (request, reply) => {
    try {
      const build = await deps.machines.requestBuild(request.params.tag, request.actor);
      return reply.redirect(`/builds/${build.id}`, 303);
    } catch (err) {
      return refused(request, reply, err);
    }
  });

  app.post<Tag>('/machines/:tag/boot-build', { config: { access: 'operator' } }, async (request, reply) => {
    try {
      if (!deps.machineImages) throw new InvalidInputError('booting an earlier build is not available here');
      const text = field(request.body, 'build_id');
      if (!/^[1-9][0-9]{0,9}$/.test(text)) throw new InvalidInputError('build_id must be a build number', { field: 'build_id' });
      const { machine } = await deps.machineImages.rollback(request.params.tag, Number(text), request.actor);
      return reply.redirect(`${path(machine.service_tag)}?notice=boot-build`, 303);
    } catch (err) {
      return refused(request, reply, err);
    }
  });

  app.post<Tag>('/machines/:tag/identity', { config: { access: 'operator' } }, async (request, reply) => {
    try {
      const action = field(request.body, 'action');
      if (action !== 'accept' && action !== 'reject') throw new InvalidInputError('action must be accept or reject', { field: 'action' });
      const machine = await deps.machines.resolveIdentityConflict(request.params.tag, action, request.actor);
      return reply.redirect(`${path(machine.service_tag)}?notice=identity-${action}ed`, 303);
    } catch (err) {
      return refused(request, reply, err);
    }
  });

  app.post<Tag>('/machines/:tag/power', { config: { access: 'operator' } }, async (request, reply) => {
    try {
      const action = field(request.body, 'action');
      if (CONFIRMED.has(action) && field(request.body, 'confirm') !== 'yes') {
        throw new InvalidInputError(`power ${action} interrupts the running machine: tick the confirmation box first`);
      }
      const bootDevice = field(request.body, 'boot_device');
      await deps.power.act(request.params.tag, { action, ...(bootDevice === 'pxe' ? { boot_device: 'pxe' } : {}) }, request.actor);
      return reply.redirect(`${path(request.params.tag)}?notice=power`, 303);
    } catch (err) {
      return refused(request, reply, err);
    }
  });

  app.post<Tag>('/machines/:tag/delete', { config: { access: 'operator' } }, async (request, reply) => {
    try {
      const machine = await deps.machines.get(request.params.tag);
      if (field(request.body, 'confirm').trim() !== machine.service_tag) {
        throw new InvalidInputError(`to delete, type the service tag ${machine.service_tag} exactly`);
      }
      await deps.machines.remove(`id:${machine.id}`, request.actor);
      return reply.redirect('/machines?notice=deleted', 303);
    } catch (err) {
      return refused(request, reply, err);
    }
  });
}
