import type { Command } from 'commander';
import { resolve } from 'node:path';
import { NginxFrontError, renderNginxFront } from '../../boot/nginx-front.ts';
import { configFromFlags } from '../../config/config-flags.ts';
import { buildNixRegistrationImage, DEFAULT_REGISTRATION_ENTRY, RegistrationBuildError } from '../../registration/nix-registration-image.ts';
import { EfiSigner } from '../../images/secure-boot.ts';

interface BuildRegistrationOptions {
  entry?: string;
  module?: string;
  dataDir?: string;
  imagesDir?: string;
  buildTimeout?: string;
}

/** `metal image ...`: server-side image maintenance on this host's image storage. */
export function registerImageCommands(program: Command): void {
  const image = program.command('image').description('images in METAL_IMAGES_DIR (run on a host with that storage)');

  image
    .command('build-registration')
    .description('build the NixOS registration image with nix-build and publish it to <images dir>/registration')
    .option('--entry <file>', 'the Nix expression to build', DEFAULT_REGISTRATION_ENTRY)
    .option('--module <file>', 'an extra NixOS module for the image (firmware, drivers this site needs)')
    .option('--data-dir <dir>', 'overrides METAL_DATA_DIR')
    .option('--images-dir <dir>', 'overrides METAL_IMAGES_DIR')
    .option('--build-timeout <seconds>', 'overrides METAL_BUILD_TIMEOUT')
    .addHelpText(
      'after',
      '\nNeeds nix-build and nixpkgs: METAL_NIXPKGS (a directory, or a tarball URL with #sha256=<hash>), else <nixpkgs> on NIX_PATH.\nIts consoles come from METAL_CONSOLE.\nExamples:\n  metal image build-registration\n  metal image build-registration --module ./site-firmware.nix --images-dir /srv/metal/images\n  METAL_NIXPKGS=/srv/nixpkgs metal image build-registration',
    )
    .action(async (opts: BuildRegistrationOptions) => {
      const config = configFromFlags(opts);
      const abort = new AbortController();
      const stop = () => abort.abort();
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
      try {
        console.log(`image: building ${opts.entry ?? DEFAULT_REGISTRATION_ENTRY}`);
        const published = await buildNixRegistrationImage({
          imagesDir: config.imagesDir,
          entry: opts.entry,
          moduleFile: opts.module,
          timeoutMs: config.buildTimeoutSeconds * 1000,
          onOutput: (chunk) => process.stdout.write(chunk),
          signal: abort.signal,
          ...(config.nixpkgs ? { nixpkgs: config.nixpkgs } : {}),
          consoles: config.consoles,
          signer: config.secureBoot ? EfiSigner.find(config.secureBoot, 'metal image build-registration') : undefined,
        });
        console.log(`image: registration image published in ${published.dir}`);
        console.log(`  bzImage ${published.files.bzImage.size} bytes  sha256 ${published.files.bzImage.sha256}`);
        console.log(`  initrd  ${published.files.initrd.size} bytes  sha256 ${published.files.initrd.sha256}`);
        console.log(`  init ${published.init ?? '(none)'}  kernel parameters: ${published.kernelParams.join(' ')}`);
        if (published.nixpkgs) console.log(`  built with ${published.nixpkgs}`);
      } catch (err) {
        if (!(err instanceof RegistrationBuildError)) throw err;
        console.error(`metal: ${err.message}; nothing was published`);
        process.exit(1);
      } finally {
        process.off('SIGINT', stop);
        process.off('SIGTERM', stop);
      }
    });

  image
    .command('nginx-config')
    .description('print an nginx configuration that sends image files itself and passes everything else to metal boot')
    .option('--listen <address>', 'where nginx listens for the boot URL: a port or address:port', '80')
    .option('--upstream <host:port>', 'where metal boot listens (METAL_BOOT_LISTEN)', '127.0.0.1:8081')
    .option('--images-dir <dir>', 'overrides METAL_IMAGES_DIR (nginx reads the files from there)')
    .addHelpText(
      'after',
      '\nnginx answers /images/ itself (asking metal boot which build an image key is) and passes scripts,\nenrollment and reports to metal boot. Set METAL_TRUST_PROXY to nginx\'s address. See docs/boot-server.md.\nExample:\n  metal image nginx-config --images-dir /var/lib/metal/images > /etc/nginx/conf.d/metal-boot.conf',
    )
    .action((opts: { listen: string; upstream: string; imagesDir?: string }) => {
      const config = configFromFlags({ imagesDir: opts.imagesDir });
      try {
        process.stdout.write(renderNginxFront({ listen: opts.listen, upstream: opts.upstream, imagesDir: resolve(config.imagesDir) }));
      } catch (err) {
        if (!(err instanceof NginxFrontError)) throw err;
        console.error(`metal: ${err.message}`);
        process.exit(2);
      }
    });
}

