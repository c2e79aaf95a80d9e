import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { principal } from '../auth/auth-routes.ts';
import { toHttpError } from '../http/error-handler.ts';
import { DomainError, InvalidInputError } from '../core/errors.ts';
import type { DashboardDeps } from './dashboard-deps.ts';
import { TokensPage, UsersPage } from './pages/admin-pages.tsx';
import { field, pageContext, queryParam, sendHtml } from './render.ts';

type Id = { Params: { id: string } };

const USER_NOTICES: Record<string, string> = { created: 'User added.', removed: 'User removed.' };
const TOKEN_NOTICES: Record<string, string> = { revoked: 'Token revoked.' };

/** /admin/users and /admin/tokens: user accounts and API tokens, for admins. */
export function registerAdminRoutes(app: FastifyInstance, deps: DashboardDeps): void {
  const requester = (request: FastifyRequest) => {
    const p = principal(request);
    return { userId: p.userId, actor: p.actor };
  };

  async function usersPage(request: FastifyRequest, reply: FastifyReply, extra: { error?: string; notice?: string } = {}) {
    const { items } = await deps.auth.users.list(500, 0);
    return sendHtml(reply, <UsersPage users={items} page={pageContext(request)} {...extra} />);
  }

  async function tokensPage(request: FastifyRequest, reply: FastifyReply, extra: { error?: string; notice?: string; created?: { name: string; token: string } } = {}) {
    const { items } = await deps.auth.tokens.list(requester(request), 500, 0);
    void reply.header('cache-control', 'no-store');
    return sendHtml(reply, <TokensPage tokens={items} page={pageContext(request)} {...extra} />);
  }

  /** Shows the page again with a refused action's reason. */
  async function refused(reply: FastifyReply, err: unknown, show: () => Promise<FastifyReply>): Promise<FastifyReply> {
    if (!(err instanceof DomainError) || err.code === 'unauthorized') throw err;
    void reply.code(toHttpError(err).status);
    return show();
  }

  app.get('/admin/users', { config: { access: 'admin' } }, async (request, reply) => {
    const notice = USER_NOTICES[queryParam(request, 'notice') ?? ''];
    return usersPage(request, reply, notice ? { notice } : {});
  });

  app.post('/admin/users', { config: { access: 'admin' } }, async (request, reply) => {
    try {
      await deps.auth.users.create(
        { username: field(request.body, 'username').trim(), role: field(request.body, 'role'), password: field(request.body, 'password') },
        request.actor,
      );
      return reply.redirect('/admin/users?notice=created', 303);
    } catch (err) {
      return refused(reply, err, () => usersPage(request, reply, { error: (err as Error).message }));
    }
  });

  app.post<Id>('/admin/users/:id/delete', { config: { access: 'admin' } }, async (request, reply) => {
    try {
      await deps.auth.users.remove(request.params.id, request.actor, principal(request).userId);
      return reply.redirect('/admin/users?notice=removed', 303);
    } catch (err) {
      return refused(reply, err, () => usersPage(request, reply, { error: (err as Error).message }));
    }
  });

  app.get('/admin/tokens', { config: { access: 'admin' } }, async (request, reply) => {
    const notice = TOKEN_NOTICES[queryParam(request, 'notice') ?? ''];
    return tokensPage(request, reply, notice ? { notice } : {});
  });

  app.post('/admin/tokens', { config: { access: 'admin' } }, async (request, reply) => {
    try {
      const expires = field(request.body, 'expires_at');
      if (expires !== '' && !/^\d{4}-\d{2}-\d{2}$/.test(expires)) throw new InvalidInputError('expires must be a date, e.g. 2030-01-31');
      const created = await deps.auth.tokens.create(requester(request), {
        name: field(request.body, 'name').trim(),
        role: field(request.body, 'role'),
        expires_at: expires === '' ? null : `${expires}T23:59:59Z`,
      });
      return tokensPage(request, reply, { created: { name: created.name, token: created.token } });
    } catch (err) {
      return refused(reply, err, () => tokensPage(request, reply, { error: (err as Error).message }));
    }
  });

  app.post<Id>('/admin/tokens/:id/revoke', { config: { access: 'admin' } }, async (request, reply) => {
    const id = /^\d{1,15}$/.test(request.params.id) ? Number(request.params.id) : NaN;
    try {
      if (!Number.isSafeInteger(id)) throw new InvalidInputError('token id must be a number');
      await deps.auth.tokens.revoke(requester(request), id);
      return reply.redirect('/admin/tokens?notice=revoked', 303);
    } catch (err) {
      return refused(reply, err, () => tokensPage(request, reply, { error: (err as Error).message }));
    }
  });
}
