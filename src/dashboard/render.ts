import type { FastifyReply, FastifyRequest } from 'fastify';
import { csrfToken } from '../auth/session-cookie.ts';
import type { PageContext } from './components.tsx';

/** Sends a rendered page or fragment as HTML; pages get the doctype, fragments do not. */
export function sendHtml(reply: FastifyReply, element: unknown, fragment = false): FastifyReply {
  return reply
    .type('text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .send(`${fragment ? '' : '<!doctype html>\n'}${String(element)}`);
}

/** The per-request facts every page needs. */
export function pageContext(request: FastifyRequest): PageContext {
  return { actor: request.actor, csrf: csrfToken(request) ?? '', now: new Date() };
}

/** A form field as a string ('' when absent or not text). */
export function field(body: unknown, name: string): string {
  if (typeof body !== 'object' || body === null) return '';
  const v = (body as Record<string, unknown>)[name];
  return typeof v === 'string' ? v : '';
}

/** A query parameter as a string, if it is one. */
export function queryParam(request: FastifyRequest, name: string): string | undefined {
  const v = (request.query as Record<string, unknown> | undefined)?.[name];
  return typeof v === 'string' ? v : undefined;
}

/** A local path to return to after signing in; anything else (other hosts, `//x`, `/\x`) becomes `/`. */
export function safeNext(next: string | undefined): string {
  if (!next || !/^\/(?![/\\])[^\s\\]*$/.test(next) || next.startsWith('/login') || next.length > 2000) return '/';
  return next;
}

/** Text typed into a textarea, with the CRLF line ends browsers submit turned back into LF. */
export function textareaValue(value: string): string {
  return value.replace(/\r\n?/g, '\n');
}
