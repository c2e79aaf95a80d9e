import type { ServerResponse } from 'node:http';
import { PassThrough } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance } from 'fastify';
import type { BuildLifecycle } from '../../core/build-lifecycle.ts';
import { NotFoundError } from '../../core/errors.ts';
import { isBuildFinished } from '../../core/lifecycle.ts';
import type { Notifier } from '../../core/notifier.ts';
import { errorResponses, BuildIdParam } from '../../http/schemas.ts';
import type { StreamGuard } from '../../http/stream-guard.ts';

/** Longest wait between looks at a followed build (for builds run by another process). */
const FOLLOW_POLL_MS = 1000;

/** How long a closing server lets open log streams finish before it cuts their connections. */
const SHUTDOWN_GRACE_MS = 2000;

/** An open log stream: how to end it, and when its response has gone out. */
interface Follower {
  end(): void;
  finished: Promise<void>;
  response: ServerResponse;
}

/** What the log routes use. */
export interface BuildLogRouteOptions {
  builds: Pick<BuildLifecycle, 'get'>;
  notifier: Notifier;
  /** Caps followed logs per user and ends a stream when its session or token dies. */
  streamGuard: StreamGuard;
}

type LogRequest = { Params: { id: number }; Querystring: { follow?: string } };

/**
 * `GET /api/v1/builds/{id}/log[?follow=1]`: the build log as text; with follow, streamed (chunked
 * text, or server-sent events for `Accept: text/event-stream`) until the build ends, woken by
 * `build.updated` signals and, for builds run by another process, a short poll. A follow counts
 * against the caller's open streams and ends when their credential dies (SSE: `event: end` with
 * `{"status":"signed-out"}`).
 */
export function registerBuildLogRoutes(app: FastifyInstance, options: BuildLogRouteOptions): void {
  const { builds, notifier, streamGuard } = options;
  const followers = new Set<Follower>();
  // Before the listener stops: open log streams would otherwise hold the close until their builds
  // end. Each stream is ended, its response allowed to finish, and its connection closed, so a
  // keep-alive connection that became idle after the close began does not hold it for a minute.
  app.addHook('preClose', async () => {
    const open = [...followers];
    for (const follower of open) follower.end();
    await Promise.race([Promise.all(open.map((f) => f.finished)), delay(SHUTDOWN_GRACE_MS)]);
    for (const follower of open) follower.response.socket?.destroySoon();
  });

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
        response: { 200: Type.String({ description: 'the log as text, or server-sent events' }), ...errorResponses(401, 403, 404, 429) },
      },
    },
    async (request, reply) => {
      const id = request.params.id;
      const build = await builds.get(id);
      const follow = request.query.follow === '1' || request.query.follow === 'true';
      if (!follow) return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(build.log_output);

      const sse = (request.headers.accept ?? '').includes('text/event-stream');
      let closed = false;
      let revoked = false;
      let wake: (() => void) | undefined;
      const end = () => {
        closed = true;
        wake?.();
      };
      const release = streamGuard.admit(request, () => {
        revoked = true;
        end();
      });
      const stream = new PassThrough();
      const finished = new Promise<void>((resolve) => {
        reply.raw.once('finish', resolve);
        reply.raw.once('close', resolve);
      });
      const entry: Follower = { end, finished, response: reply.raw };
      followers.add(entry);
      request.raw.on('close', end);
      const onUpdated = (buildId: number) => {
        if (buildId === id) wake?.();
      };
      notifier.on('build.updated', onUpdated);

      const write = (text: string) => {
        if (text === '') return;
        stream.write(sse ? `${text.split('\n').map((l) => `data: ${l}`).join('\n')}\n\n` : text);
      };
      const follower = new LogFollower();
      if (sse) stream.write(`: build ${id}\n\n`);
      // The status line goes out at once, before any log text, so a follower knows it was admitted.
      reply.raw.once('pipe', () => reply.raw.flushHeaders());
      void (async () => {
        try {
          for (;;) {
            const current = await builds.get(id).catch(unlessNotFound);
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
          request.log.warn({ err, build: id }, `builder: following the log of build ${id} failed`);
        } finally {
          if (revoked && sse) stream.write(`event: end\ndata: ${JSON.stringify({ status: 'signed-out', error: 'the session or token of this stream ended' })}\n\n`);
          release();
          notifier.off('build.updated', onUpdated);
          followers.delete(entry);
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

/** A deleted build ends its stream; other errors are errors. */
function unlessNotFound(err: unknown): undefined {
  if (err instanceof NotFoundError) return undefined;
  throw err;
}
