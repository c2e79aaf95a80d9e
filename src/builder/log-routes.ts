import { PassThrough } from 'node:stream';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import { errorResponses, BuildIdParam } from '../http/schemas.ts';
import { isBuildFinished } from '../core/lifecycle.ts';
import type { AppContext } from '../server/context.ts';
import { forwardBuildSignals } from './build-notifications.ts';

/** Longest wait between looks at a followed build (for builds run by another process). */
const FOLLOW_POLL_MS = 1000;

type LogRequest = { Params: { id: number }; Querystring: { follow?: string } };

/**
 * `GET /api/v1/builds/{id}/log[?follow=1]`: the build log as text; with follow, streamed (chunked
 * text, or server-sent events for `Accept: text/event-stream`) until the build ends. Also forwards
 * this process's build requests to builders elsewhere (PostgreSQL NOTIFY).
 */
export function registerBuildLogRoutes(app: FastifyInstance, ctx: AppContext): void {
  const stopForwarding = forwardBuildSignals(ctx);
  const followers = new Set<() => void>();
  // Before the listener stops: open log streams would otherwise hold the close until their builds end.
  app.addHook('preClose', async () => {
    for (const end of followers) end();
  });
  app.addHook('onClose', async () => stopForwarding());

  app.get<LogRequest>(
    '/api/v1/builds/:id/log',
    {
      config: { access: 'viewer' },
      schema: {
        tags: ['builds'],
        summary: 'The build log; with follow=1, streamed until the build ends',
        params: BuildIdParam,
        querystring: Type.Object({ follow: Type.Optional(Type.Union([Type.Literal('0'), Type.Literal('1'), Type.Literal('true'), Type.Literal('false')])) }),
        produces: ['text/plain', 'text/event-stream'],
        response: { 200: Type.String({ description: 'the log as text, or server-sent events' }), ...errorResponses(401, 403, 404) },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      const build = await ctx.builds.get(id);
      const follow = request.query.follow === '1' || request.query.follow === 'true';
      if (!follow) return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(build.log_output);

      const sse = (request.headers.accept ?? '').includes('text/event-stream');
      const stream = new PassThrough();
      let closed = false;
      let wake: (() => void) | undefined;
      const end = () => {
        closed = true;
        wake?.();
      };
      followers.add(end);
      request.raw.on('close', end);
      const onUpdated = (buildId: number) => {
        if (buildId === id) wake?.();
      };
      ctx.notifier.on('build.updated', onUpdated);

      const write = (text: string) => {
        if (text === '') return;
        stream.write(sse ? `${text.split('\n').map((l) => `data: ${l}`).join('\n')}\n\n` : text);
      };
      const follower = new LogFollower();
      if (sse) stream.write(`: build ${id}\n\n`);
      void (async () => {
        try {
          for (;;) {
            const current = await ctx.storage.builds.findById(id);
            if (!current || closed) break;
            write(follower.next(current.log_output));
            if (isBuildFinished(current.status)) {
              if (sse) stream.write(`event: end\ndata: ${JSON.stringify({ status: current.status, error: current.error })}\n\n`);
              break;
            }
            await new Promise<void>((resolve) => {
              const timer = setTimeout(resolve, FOLLOW_POLL_MS);
              wake = () => {
                clearTimeout(timer);
                resolve();
              };
            });
            wake = undefined;
          }
        } catch (err) {
          request.log.warn({ err, buildId: id }, 'builder: following a build log failed');
        } finally {
          ctx.notifier.off('build.updated', onUpdated);
          followers.delete(end);
          stream.end();
        }
      })();
      return reply
        .type(sse ? 'text/event-stream; charset=utf-8' : 'text/plain; charset=utf-8')
        .header('cache-control', 'no-store')
        .header('x-accel-buffering', 'no')
        .send(stream);
    },
  );
}

/**
 * Turns successive snapshots of a log into the text not yet sent. A failed build's log gains its
 * reason as a first line when it ends; the follower finds where what it sent went, continues from
 * there, and sends that reason last.
 */
export class LogFollower {
  /** Where the text already sent starts in the log, and how much of it was sent. */
  private base = 0;
  private sent = 0;
  /** The first characters sent, to find them again. */
  private head = '';

  next(log: string): string {
    let prepended = '';
    if (!log.startsWith(this.head, this.base)) {
      const found = log.indexOf(this.head);
      if (found < 0) {
        this.base = 0;
        this.sent = 0;
      } else {
        prepended = log.slice(this.base, found);
        this.base = found;
      }
    }
    const text = log.slice(this.base + this.sent);
    this.sent += text.length;
    if (this.head.length < 64) this.head = log.slice(this.base, this.base + Math.min(64, this.sent));
    return text + prepended;
  }
}
