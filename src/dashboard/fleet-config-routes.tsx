import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { DomainError, InvalidInputError } from '../core/errors.ts';
import { toHttpError } from '../http/error-handler.ts';
import type { DashboardDeps } from './dashboard-deps.ts';
import { ProfilePage, ProfilesPage, type ProfileForm } from './pages/profiles-page.tsx';
import { RulePreviewContent, RulesPage, type RuleForm } from './pages/rules-page.tsx';
import { field, pageContext, queryParam, sendHtml, textareaValue } from './render.ts';

type Name = { Params: { name: string } };
type Id = { Params: { id: string } };

const NOTICES: Record<string, string> = {
  created: 'Created.',
  saved: 'Saved. Its machines’ out-of-date state follows the change.',
  deleted: 'Deleted.',
  rebuilding: 'Builds requested for the machines that were out of date.',
};

/** The fleet configuration services the pages use. */
export type FleetDeps = NonNullable<DashboardDeps['fleet']>;

/** A domain error re-shows the page with the reason; anything else goes to the error handler. */
function isShown(err: unknown): err is DomainError {
  return err instanceof DomainError && err.code !== 'unauthorized' && err.code !== 'forbidden';
}

function readProfileForm(body: unknown): ProfileForm {
  return {
    name: field(body, 'name').trim(),
    description: field(body, 'description'),
    hostname_pattern: field(body, 'hostname_pattern').trim(),
    kernel_params: field(body, 'kernel_params'),
    auto_build: field(body, 'auto_build') === 'yes',
    health_check: field(body, 'health_check'),
    skip_boot_check: field(body, 'skip_boot_check') === 'yes',
    nixos_config: textareaValue(field(body, 'nixos_config')),
  };
}

function profileBody(form: ProfileForm): Record<string, unknown> {
  return {
    description: form.description.trim() === '' ? null : form.description,
    hostname_pattern: form.hostname_pattern === '' ? null : form.hostname_pattern,
    kernel_params: form.kernel_params.split(/\s+/).filter(Boolean),
    auto_build: form.auto_build,
    health_check: form.health_check.trim() === '' ? null : form.health_check,
    skip_boot_check: form.skip_boot_check,
    nixos_config: form.nixos_config,
  };
}

function readRuleForm(body: unknown): RuleForm {
  const gpu = field(body, 'gpu');
  return {
    name: field(body, 'name').trim(),
    priority: field(body, 'priority').trim() || '100',
    manufacturer: field(body, 'manufacturer').trim(),
    model: field(body, 'model').trim(),
    service_tag: field(body, 'service_tag').trim(),
    mac: field(body, 'mac').trim(),
    switch: field(body, 'switch').trim(),
    switch_port: field(body, 'switch_port').trim(),
    labels_selector: field(body, 'labels_selector').trim(),
    gpu: gpu === 'yes' || gpu === 'no' ? gpu : '',
    profile: field(body, 'profile').trim(),
    set_labels: field(body, 'set_labels').trim(),
    hostname_pattern: field(body, 'hostname_pattern').trim(),
    build: field(body, 'build') === 'yes',
  };
}

/** The rule body the API takes, from the form; InvalidInputError for what the form alone can tell. */
function ruleBody(f: RuleForm, withName: boolean): Record<string, unknown> {
  if (!/^\d{1,7}$/.test(f.priority)) throw new InvalidInputError('priority must be a whole number');
  const match: Record<string, unknown> = {};
  for (const key of ['manufacturer', 'model', 'service_tag', 'mac', 'switch', 'switch_port'] as const) if (f[key]) match[key] = f[key];
  if (f.labels_selector) match.labels = f.labels_selector;
  if (f.gpu) match.gpu = f.gpu === 'yes';
  const set: Record<string, unknown> = {};
  if (f.profile) set.profile = f.profile;
  if (f.hostname_pattern) set.hostname_pattern = f.hostname_pattern;
  if (f.set_labels) {
    set.labels = Object.fromEntries(
      f.set_labels.split(',').map((pair) => {
        const at = pair.indexOf('=');
        if (at <= 0) throw new InvalidInputError(`labels: ${JSON.stringify(pair.trim())} is not key=value`);
        return [pair.slice(0, at).trim(), pair.slice(at + 1).trim()];
      }),
    );
  }
  return { ...(withName || f.name ? { name: f.name } : {}), priority: Number(f.priority), match, set, build: f.build };
}

/** /profiles and /rules: the fleet's configuration in the dashboard. */
export function registerFleetConfigPages(app: FastifyInstance, fleet: FleetDeps): void {
  async function showProfiles(request: FastifyRequest, reply: FastifyReply, extra: { error?: string; notice?: string; form?: ProfileForm } = {}) {
    return sendHtml(reply, <ProfilesPage profiles={await fleet.profiles.list()} page={pageContext(request)} {...extra} />);
  }

  async function showProfile(request: FastifyRequest<Name>, reply: FastifyReply, extra: { error?: string; notice?: string; form?: ProfileForm } = {}) {
    const profile = await fleet.profiles.get(request.params.name);
    const machines = (await fleet.machines.list({ profile: profile.name, limit: 500, offset: 0, sort: 'hostname' })).items;
    return sendHtml(reply, <ProfilePage profile={profile} machines={machines} page={pageContext(request)} {...extra} />);
  }

  async function showRules(request: FastifyRequest, reply: FastifyReply, extra: { error?: string; notice?: string; form?: RuleForm } = {}) {
    const [rules, profiles] = await Promise.all([fleet.rules.list(), fleet.profiles.list()]);
    return sendHtml(reply, <RulesPage rules={rules} profiles={profiles} page={pageContext(request)} {...extra} />);
  }

  app.get('/profiles', { config: { access: 'viewer' } }, async (request, reply) => {
    const notice = NOTICES[queryParam(request, 'notice') ?? ''];
    return showProfiles(request, reply, notice ? { notice } : {});
  });

  app.post('/profiles', { config: { access: 'operator' } }, async (request, reply) => {
    const form = readProfileForm(request.body);
    try {
      const p = await fleet.profiles.create({ name: form.name, ...profileBody(form) }, request.actor);
      return reply.redirect(`/profiles/${encodeURIComponent(p.name)}?notice=created`, 303);
    } catch (err) {
      if (!isShown(err)) throw err;
      void reply.code(toHttpError(err).status);
      return showProfiles(request, reply, { error: err.message, form });
    }
  });

  app.get<Name>('/profiles/:name', { config: { access: 'viewer' } }, async (request, reply) => {
    const notice = NOTICES[queryParam(request, 'notice') ?? ''];
    return showProfile(request, reply, notice ? { notice } : {});
  });

  app.post<Name>('/profiles/:name', { config: { access: 'operator' } }, async (request, reply) => {
    const form = readProfileForm(request.body);
    try {
      await fleet.profiles.update(request.params.name, profileBody(form), request.actor);
      return reply.redirect(`/profiles/${encodeURIComponent(request.params.name)}?notice=saved`, 303);
    } catch (err) {
      if (!isShown(err) || err.code === 'not_found') throw err;
      void reply.code(toHttpError(err).status);
      return showProfile(request, reply, { error: err.message, form });
    }
  });

  app.post<Name>('/profiles/:name/rebuild', { config: { access: 'operator' } }, async (request, reply) => {
    const profile = await fleet.profiles.get(request.params.name);
    // The bulk action picks the machines itself, so a profile past its limit is refused with a reason
    // rather than rebuilt in part.
    let answer;
    try {
      answer = await fleet.bulk.run({ action: 'build', in_profile: profile.name, out_of_date: true }, request.actor);
    } catch (err) {
      if (!isShown(err)) throw err;
      void reply.code(toHttpError(err).status);
      return showProfile(request, reply, { error: err.message });
    }
    if (answer.matched === 0) return showProfile(request, reply, { notice: 'Nothing to rebuild: every machine of the profile is up to date.' });
    return reply.redirect(`/profiles/${encodeURIComponent(profile.name)}?notice=rebuilding`, 303);
  });

  app.post<Name>('/profiles/:name/delete', { config: { access: 'operator' } }, async (request, reply) => {
    try {
      await fleet.profiles.remove(request.params.name, request.actor);
      return reply.redirect('/profiles?notice=deleted', 303);
    } catch (err) {
      if (!isShown(err) || err.code === 'not_found') throw err;
      void reply.code(toHttpError(err).status);
      return showProfile(request, reply, { error: err.message });
    }
  });

  app.get('/rules', { config: { access: 'viewer' } }, async (request, reply) => {
    const notice = NOTICES[queryParam(request, 'notice') ?? ''];
    return showRules(request, reply, notice ? { notice } : {});
  });

  app.post('/rules', { config: { access: 'operator' } }, async (request, reply) => {
    const form = readRuleForm(request.body);
    try {
      await fleet.rules.create(ruleBody(form, true), request.actor);
      return reply.redirect('/rules?notice=created', 303);
    } catch (err) {
      if (!isShown(err)) throw err;
      void reply.code(toHttpError(err).status);
      return showRules(request, reply, { error: err.message, form });
    }
  });

  // The live preview: the form as typed, answered with a fragment (an incomplete rule says why).
  app.post('/rules/preview', { config: { access: 'operator' } }, async (request, reply) => {
    try {
      const preview = await fleet.rules.preview(ruleBody(readRuleForm(request.body), false));
      return sendHtml(reply, <RulePreviewContent preview={preview} />, true);
    } catch (err) {
      if (!isShown(err)) throw err;
      return sendHtml(reply, <RulePreviewContent error={err.message} />, true);
    }
  });

  app.post<Id>('/rules/:id/delete', { config: { access: 'operator' } }, async (request, reply) => {
    await fleet.rules.remove(request.params.id, request.actor);
    return reply.redirect('/rules?notice=deleted', 303);
  });
}
