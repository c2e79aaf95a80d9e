import { createReadStream, type Stats } from 'node:fs';
import { open, realpath } from 'node:fs/promises';
import { join, sep } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NotFoundError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';

/**
 * Read size per chunk. 16 KiB reached a third of nginx's throughput; 256 KiB was measured faster than
 * 1 MiB with memory flat, where 1 MiB reads held about 4 MiB per download (docs/benchmarks.md).
 */
export const READ_CHUNK_BYTES = 256 * 1024;

/** A file or directory name in the layout: no leading dot, no separators, no NUL. */
const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
/** A build's image key as generated: 128 bits in base64url (longer ones are accepted, counting ids is not). */
const IMAGE_KEY = /^[A-Za-z0-9_-]{22,64}$/;

/**
 * Maps a request path below /images/ to path segments, or undefined when it is not a served file
 * (registration/<f>, builds/<image key>/<f>). Segments are decoded one by one, so an encoded `/` or
 * `..` stays inside its segment and fails the name check. A build's files are reached by its random
 * image key only: neither its sequential id nor the `machines/<tag>` link is served.
 */
export function imagePathSegments(rawPath: string): string[] | undefined {
  const segments: string[] = [];
  for (const raw of rawPath.split('/')) {
    let decoded: string;
    try {
      decoded = decodeURIComponent(raw);
    } catch {
      return undefined;
    }
    if (!NAME.test(decoded)) return undefined;
    segments.push(decoded);
  }
  const [area, a, b, extra] = segments;
  if (extra !== undefined) return undefined;
  if (area === 'registration' && a !== undefined && b === undefined) return segments;
  if (area === 'builds' && a !== undefined && IMAGE_KEY.test(a) && b !== undefined) return segments;
  return undefined;
}

type RangeResult = { start: number; end: number } | 'unsatisfiable' | undefined;

/** One `bytes=` range; undefined (serve the whole file) for anything else, as RFC 9110 allows. */
export function parseRange(header: string, size: number): RangeResult {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0 || size === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - suffix), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (m[2] !== '' && Number(m[2]) < start) return undefined;
  if (start >= size) return 'unsatisfiable';
  return { start, end };
}

function entityTag(stats: Stats): string {
  return `"${stats.size.toString(16)}-${Math.floor(stats.mtimeMs).toString(16)}"`;
}

function isNotModified(request: FastifyRequest, etag: string, mtime: Date): boolean {
  const inm = request.headers['if-none-match'];
  if (inm !== undefined) {
    return inm.split(',').some((t) => {
      const tag = t.trim();
      return tag === '*' || tag === etag || tag === `W/${etag}`;
    });
  }
  const ims = request.headers['if-modified-since'];
  if (ims === undefined) return false;
  const since = Date.parse(ims);
  return Number.isFinite(since) && Math.floor(mtime.getTime() / 1000) * 1000 <= since;
}

/** A Range applies unless If-Range names another version of the file. */
function rangeApplies(request: FastifyRequest, etag: string, lastModified: string): boolean {
  const ifRange = request.headers['if-range'];
  return ifRange === undefined || ifRange === etag || ifRange === lastModified;
}

/** Where image traffic is counted. */
export interface ImageMetrics {
  imageRequest(file: string | undefined, status: number, bytes: number): void;
}

/**
 * `GET|HEAD /images/...`: image files streamed from `root` with Content-Length, ETag,
 * Last-Modified, conditional requests (304) and single byte ranges (206, 416). No listings; a
 * path (or a symlink) that resolves outside `root` is not found.
 */
export function registerImageRoutes(
  app: FastifyInstance,
  root: string,
  logger: Logger,
  /** The build whose files `builds/<image key>/` names (its directory on disk is `builds/<id>/`). */
  buildIdOfImageKey: (imageKey: string) => Promise<number | undefined>,
  metrics?: ImageMetrics,
): void {
  let rootReal: string | undefined;
  /** What each request sent: its file name and the bytes read from disk for it. */
  const sent = new WeakMap<FastifyRequest, { file: string; bytes: number }>();
  const notFound = (path: string): NotFoundError => {
    logger.debug({ path }, 'boot: image file not found or refused');
    return new NotFoundError('no such image file');
  };

  async function resolveFile(path: string, segments: string[]): Promise<string> {
    rootReal ??= await realpath(root).catch(() => undefined);
    if (rootReal === undefined) throw notFound(path);
    let real: string;
    try {
      real = await realpath(join(rootReal, ...segments));
    } catch {
      throw notFound(path);
    }
    if (!real.startsWith(rootReal + sep)) throw notFound(path);
    return real;
  }

  app.route({
    method: ['GET', 'HEAD'],
    url: '/images/*',
    exposeHeadRoute: false,
    config: { access: 'public' },
    schema: { hide: true },
    ...(metrics
      ? {
          onResponse: async (request: FastifyRequest, reply: FastifyReply) => {
            const what = sent.get(request);
            metrics.imageRequest(what?.file, reply.statusCode, what?.bytes ?? 0);
          },
        }
      : {}),
    handler: async (request: FastifyRequest, reply: FastifyReply) => {
      const path = (request.raw.url ?? '').split('?')[0]!;
      const segments = imagePathSegments(path.slice('/images/'.length));
      if (!segments) throw notFound(path);
      if (segments[0] === 'builds') {
        const buildId = await buildIdOfImageKey(segments[1]!);
        if (buildId === undefined) throw notFound(path);
        segments[1] = String(buildId);
      }
      const file = await open(await resolveFile(path, segments), 'r').catch((err: unknown) => {
        throw err instanceof NotFoundError ? err : notFound(path);
      });
      let handedOver = false;
      try {
        const stats = await file.stat();
        if (!stats.isFile()) throw notFound(path);
        const etag = entityTag(stats);
        const lastModified = stats.mtime.toUTCString();
        const headers: Record<string, string | number> = {
          'content-type': segments.at(-1)!.endsWith('.json') ? 'application/json' : 'application/octet-stream',
          'accept-ranges': 'bytes',
          etag,
          'last-modified': lastModified,
        };
        if (isNotModified(request, etag, stats.mtime)) {
          return reply.code(304).headers({ etag, 'last-modified': lastModified }).send();
        }
        const rangeHeader = request.headers.range;
        const range = rangeHeader !== undefined && rangeApplies(request, etag, lastModified) ? parseRange(rangeHeader, stats.size) : undefined;
        if (range === 'unsatisfiable') {
          return reply
            .code(416)
            .header('content-range', `bytes */${stats.size}`)
            .send({ error: { code: 'invalid_input', message: `range ${rangeHeader} is outside the file (${stats.size} bytes)` } });
        }
        const start = range?.start ?? 0;
        const end = range?.end ?? stats.size - 1;
        headers['content-length'] = Math.max(0, end - start + 1);
        if (range) headers['content-range'] = `bytes ${start}-${end}/${stats.size}`;
        if (logger.isLevelEnabled('debug')) logger.debug({ path, status: range ? 206 : 200, bytes: headers['content-length'] }, 'boot: image file served');
        reply.hijack();
        reply.raw.writeHead(range ? 206 : 200, headers);
        if (request.method === 'HEAD' || stats.size === 0) {
          reply.raw.end();
          return;
        }
        handedOver = true;
        const stream = createReadStream('', { fd: file, start, end, highWaterMark: READ_CHUNK_BYTES, autoClose: true });
        const counted = { file: segments.at(-1)!, bytes: 0 };
        sent.set(request, counted);
        stream.on('data', (chunk: Buffer | string) => (counted.bytes += chunk.length));
        await pipeline(stream, reply.raw).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') logger.warn({ err, path }, 'boot: image download failed');
        });
      } finally {
        if (!handedOver) await file.close();
      }
    },
  });
}

/** The path of the image key check a static server in front asks (nginx `auth_request`, see nginx-front.ts). */
export const IMAGE_KEY_CHECK_ROUTE = '/boot/image-key/:key';
/** The header that carries the build id of a known key. */
export const IMAGE_BUILD_HEADER = 'x-metal-build-id';

/**
 * `GET /boot/image-key/<key>`: which build's directory a static server in front may serve for this
 * image key, in nginx's `auth_request` protocol: 204 with `X-Metal-Build-Id` when the key belongs to
 * a successful build whose files are served (the same rule as `/images/builds/<key>/...` here), 403
 * otherwise (nginx then answers 404). Knowing a key already grants its files, so the answer gives
 * nothing away.
 */
export function registerImageKeyCheckRoute(app: FastifyInstance, buildIdOfImageKey: (imageKey: string) => Promise<number | undefined>): void {
  app.get<{ Params: { key: string } }>(IMAGE_KEY_CHECK_ROUTE, { config: { access: 'public' }, schema: { hide: true } }, async (request, reply) => {
    const { key } = request.params;
    const buildId = IMAGE_KEY.test(key) ? await buildIdOfImageKey(key) : undefined;
    if (buildId === undefined) return reply.code(403).send({ error: { code: 'not_found', message: 'no published build has this image key' } });
    return reply.code(204).header(IMAGE_BUILD_HEADER, String(buildId)).header('cache-control', 'no-store').send();
  });
}
