import formbody from '@fastify/formbody';
import type { FastifyInstance } from 'fastify';
import { setErrorPage, toHttpError } from '../http/error-handler.ts';
import type { DashboardDeps } from './dashboard-deps.ts';
import { registerAdminRoutes } from './admin-routes.tsx';
import { registerWebhookPages } from './webhook-routes.tsx';
import { registerFleetConfigPages } from './fleet-config-routes.tsx';
import { registerRolloutPages } from './rollout-routes.tsx';
import { BuildLogStreams } from './build-log-stream.ts';
import { registerBuildRoutes } from './build-routes.tsx';
import { registerFleetRoutes } from './fleet-routes.tsx';
import { FleetSummaryCache } from './fleet-summary.ts';
import { registerMachineRoutes } from './machine-routes.tsx';
import { ErrorPage } from './pages/login-page.tsx';
import { safeNext, sendHtml } from './render.ts';
import { registerSessionRoutes } from './session-routes.tsx';
import { registerStaticAssets } from './static-assets.ts';

/**
 * The web dashboard on the API listener, in its own scope: HTML forms are accepted only here, and a
 * request without a session is sent to /login (303) instead of getting a JSON 401.
 */
export async function registerDashboard(app: FastifyInstance, deps: DashboardDeps): Promise<void> {
  // A browser's mistyped or stale address gets a page, not the API's JSON.
  setErrorPage(app, (reply, status, message, request) =>
    sendHtml(reply, <ErrorPage status={status} message={message} signedIn={isSignedIn(request.actor)} />),
  );
  await app.register(async (scope) => {
    scope.addHook('onRoute', (route) => {
      route.schema = { ...route.schema, hide: true };
    });
    await scope.register(formbody, { bodyLimit: 1024 * 1024 });
    const summary = new FleetSummaryCache(deps.reads.machines, deps.notifier);
    const streams = new BuildLogStreams();
    scope.addHook('preClose', async () => streams.closeAll());
    scope.addHook('onClose', async () => summary.close());

    scope.setErrorHandler(async (err, request, reply) => {
      const { status, body, retryAfter } = toHttpError(err);
      if (status === 401) {
        if (request.headers['hx-request']) return reply.code(401).header('hx-redirect', '/login').send('');
        return reply.redirect(`/login?next=${encodeURIComponent(safeNext(request.url))}`, 303);
      }
      if (status >= 500) request.log.error({ err }, 'dashboard: request failed');
      else request.log.info({ code: body.error.code, msg: body.error.message }, 'dashboard: request refused');
      if (retryAfter !== undefined) void reply.header('retry-after', String(retryAfter));
      return sendHtml(reply.code(status), <ErrorPage status={status} message={body.error.message} signedIn={request.actor?.kind !== 'anonymous'} />);
    });

    registerStaticAssets(scope);
    registerSessionRoutes(scope, deps);
    registerFleetRoutes(scope, deps, summary);
    registerMachineRoutes(scope, deps);
    registerBuildRoutes(scope, deps, streams);
    registerAdminRoutes(scope, deps);
    if (deps.webhooks) registerWebhookPages(scope, deps.webhooks);
    if (deps.fleet) registerFleetConfigPages(scope, deps.fleet);
    if (deps.rollouts) registerRolloutPages(scope, deps.rollouts);
  });
}

/** Whether a request came from someone signed in; the router's refusals come before anyone is known. */
function isSignedIn(actor: { kind: string } | null | undefined): boolean {
  return actor !== null && actor !== undefined && actor.kind !== 'anonymous';
}
