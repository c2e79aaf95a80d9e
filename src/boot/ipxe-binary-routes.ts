import { createReadStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { NotFoundError } from '../core/errors.ts';
import type { Logger } from '../core/logger.ts';

/** What the iPXE binary routes need. */
export interface IpxeBinaryRoutesOptions {
  /** The directory of iPXE binaries (METAL_IPXE_DIR). e.g. `/usr/lib/ipxe` */
  dir: string;
  logger: Logger;
}

/** A binary's name: one plain file name, no leading dot, no separators. */
const FILE_NAME = /^[A-Za-z0-9_][A-Za-z0-9._+-]{0,127}$/;

/**
 * `GET|HEAD /ipxe/<file>`: the iPXE binaries over HTTP, for UEFI HTTP boot (the proxyDHCP hands
 * such firmware `<boot url>/ipxe/ipxe.efi`). Only plain names directly in the directory; links the
 * directory itself holds are followed (Debian's `ipxe.efi` is one), a directory is not found.
 */
export function registerIpxeBinaryRoutes(app: FastifyInstance, options: IpxeBinaryRoutesOptions): void {
  const { dir, logger } = options;
  app.route({
    method: ['GET', 'HEAD'],
    url: '/ipxe/:file',
    exposeHeadRoute: false,
    config: { access: 'public' },
    schema: { hide: true },
    handler: async (request: FastifyRequest<{ Params: { file: string } }>, reply: FastifyReply) => {
      const name = request.params.file;
      if (!FILE_NAME.test(name)) throw new NotFoundError('no such iPXE binary');
      const file = await open(join(dir, name), 'r').catch(() => {
        throw new NotFoundError(`no iPXE binary ${name}`);
      });
      let handedOver = false;
      try {
        const stats = await file.stat();
        if (!stats.isFile()) throw new NotFoundError(`no iPXE binary ${name}`);
        logger.info({ file: name, client: request.ip }, `boot: iPXE binary ${name} served over HTTP`);
        reply.hijack();
        // UEFI HTTP boot reads application/efi as an EFI application.
        reply.raw.writeHead(200, { 'content-type': name.endsWith('.efi') ? 'application/efi' : 'application/octet-stream', 'content-length': stats.size });
        if (request.method === 'HEAD' || stats.size === 0) {
          reply.raw.end();
          return;
        }
        handedOver = true;
        await pipeline(createReadStream('', { fd: file, autoClose: true }), reply.raw).catch((err: NodeJS.ErrnoException) => {
          if (err.code !== 'ERR_STREAM_PREMATURE_CLOSE') logger.warn({ err, file: name }, 'boot: iPXE binary download failed');
        });
      } finally {
        if (!handedOver) await file.close();
      }
    },
  });
}
