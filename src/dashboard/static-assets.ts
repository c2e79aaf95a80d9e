import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** The dashboard's own files plus htmx from node_modules, read once at start-up; nothing from a CDN. */
function loadAssets(): Map<string, Asset> {
  const own = (name: string) => fileURLToPath(new URL(`./static/${name}`, import.meta.url));
  const files: Array<[string, string, string]> = [
    ['app.css', own('app.css'), 'text/css; charset=utf-8'],
    ['app.js', own('app.js'), 'text/javascript; charset=utf-8'],
    ['favicon.svg', own('favicon.svg'), 'image/svg+xml'],
    ['htmx.min.js', createRequire(import.meta.url).resolve('htmx.org/dist/htmx.min.js'), 'text/javascript; charset=utf-8'],
  ];
  const assets = new Map<string, Asset>();
  for (const [name, path, type] of files) {
    const body = readFileSync(path);
    assets.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }
  return assets;
}

/** GET /static/<file> for the stylesheet and scripts; public, revalidated by ETag. */
export function registerStaticAssets(app: FastifyInstance): void {
  const assets = loadAssets();
  for (const [name, asset] of assets) {
    app.get(`/static/${name}`, { config: { access: 'public' } }, async (request, reply) => {
      void reply.header('etag', asset.etag).header('cache-control', 'no-cache').type(asset.type);
      if (request.headers['if-none-match'] === asset.etag) return reply.code(304).send();
      return reply.send(asset.body);
    });
  }
}
