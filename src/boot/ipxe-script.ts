import type { BootManifest } from '../images/boot-manifest.ts';

/** Download attempts of a kernel and initrd before a script asks the boot server again. */
export const DOWNLOAD_ATTEMPTS = 3;
/** Seconds between two download attempts. */
export const RETRY_DELAY_SECONDS = 5;
/** Seconds before a script that gave up on its downloads asks the boot server again. */
export const RESTART_DELAY_SECONDS = 30;

/** Characters an interpolated word may have: none that iPXE expands, splits or treats as an operator. */
const SAFE_WORD = /^[A-Za-z0-9._,:/=+@%~?&[\]-]+$/;
/** Characters of an `echo` text: plain words and punctuation only. */
const SAFE_TEXT = /^[A-Za-z0-9 .,:()/=_-]*$/;

/** Refuses to write a value that could change the meaning of a script (callers validate first). */
function word(value: string): string {
  if (!SAFE_WORD.test(value) || value.includes('&&') || value.includes('||')) {
    throw new Error(`boot: refusing to write an unsafe word into an iPXE script: ${JSON.stringify(value.slice(0, 80))}`);
  }
  return value;
}

function echo(text: string): string {
  if (!SAFE_TEXT.test(text)) throw new Error(`boot: refusing to echo unsafe text: ${JSON.stringify(text.slice(0, 80))}`);
  return `echo metal: ${text}`;
}

function script(lines: string[]): string {
  return `#!ipxe\n${lines.join('\n')}\n`;
}

/**
 * The URL of a machine's own script, rebuilt from validated values only; without a usable tag, the
 * generic entry script, which lets iPXE fill in the machine's identity again.
 */
export function scriptUrl(bootUrl: string, tag: string | undefined, mac: string | undefined, uuid: string | undefined): string {
  if (tag === undefined) return `${bootUrl}/boot.ipxe`;
  const query = [mac === undefined ? '' : `mac=${mac}`, uuid === undefined ? '' : `uuid=${uuid}`].filter(Boolean).join('&');
  return `${bootUrl}/nixos/machines/${tag}.ipxe${query ? `?${query}` : ''}`;
}

/** iPXE expands it to the MAC of the NIC it is booting through (`netX` is the last one it opened). */
export const BOOTING_NIC_MAC = '${netX/mac}';

interface FetchAndBoot {
  headline: string;
  kernelUrl: string;
  kernelArgs: string[];
  /** Fixed arguments of this module that use iPXE expansions on purpose; written as they are. */
  expandedArgs?: string[];
  initrdUrl: string;
  /** Chained after the downloads failed DOWNLOAD_ATTEMPTS times. */
  selfUrl: string;
}

/** Downloads kernel and initrd with retries, boots them; after repeated failures asks the server again. */
function fetchAndBoot(o: FetchAndBoot): string {
  return script([
    echo(o.headline),
    'set metal_try:int32 0',
    ':fetch',
    'inc metal_try',
    `kernel ${[...[o.kernelUrl, 'initrd=initrd', ...o.kernelArgs].map(word), ...(o.expandedArgs ?? [])].join(' ')} || goto failed`,
    `initrd --name initrd ${word(o.initrdUrl)} || goto failed`,
    'boot || goto failed',
    ':failed',
    `iseq \${metal_try} ${DOWNLOAD_ATTEMPTS} || goto retry`,
    ':restart',
    echo(`the download failed ${DOWNLOAD_ATTEMPTS} times, asking the boot server again in ${RESTART_DELAY_SECONDS} s`),
    `sleep ${RESTART_DELAY_SECONDS}`,
    `chain --replace --autofree ${word(o.selfUrl)} || goto restart`,
    ':retry',
    echo(`the download failed, retrying in ${RETRY_DELAY_SECONDS} s`),
    `sleep ${RETRY_DELAY_SECONDS}`,
    'goto fetch',
  ]);
}

/** What a registration script is made of. */
export interface RegistrationScript {
  bootUrl: string;
  selfUrl: string;
  /** The requested tag when it is valid, for the message; e.g. `ABC123` */
  tag: string | undefined;
  manifest: BootManifest;
  /** METAL_ENROLL_TOKEN, when set. */
  enrollToken: string | undefined;
  /** The booting NIC's MAC when the request named it (`?mac=`); else iPXE fills it in. e.g. `52:54:00:12:34:56` */
  bootMac: string | undefined;
  /** METAL_AFTER_ENROLL: what the agent does once enrolled. */
  afterEnroll: 'reboot' | 'poweroff' | 'hold';
}

/** For machines the server does not know: the registration image, which enrolls them. */
export function renderRegistrationScript(o: RegistrationScript): string {
  const base = `${o.bootUrl}/images/registration`;
  return fetchAndBoot({
    headline: `${o.tag ?? 'this machine'} is not enrolled, starting the registration image`,
    kernelUrl: `${base}/bzImage`,
    kernelArgs: [
      ...(o.manifest.init ? [`init=${o.manifest.init}`] : []),
      ...o.manifest.kernelParams,
      `enrollment_url=${o.bootUrl}/api/v1/enroll`,
      ...(o.enrollToken ? [`metal.enroll_token=${o.enrollToken}`] : []),
      `metal.after=${o.afterEnroll}`,
    ],
    expandedArgs: [`metal.boot_mac=${o.bootMac ? word(o.bootMac) : BOOTING_NIC_MAC}`],
    initrdUrl: `${base}/initrd`,
    selfUrl: o.selfUrl,
  });
}

/** What a machine's own image script is made of. */
export interface ImageScript {
  bootUrl: string;
  selfUrl: string;
  tag: string;
  buildId: number;
  /** The build's directory in image URLs, e.g. `3q2-7wAAAAB3zM1uYm9vdA` */
  imageKey: string;
  /** The per-build token the image presents when it reports that it booted. */
  bootToken: string;
  manifest: BootManifest;
}

/** A machine's own image, fetched from the immutable per-build directory. */
export function renderImageScript(o: ImageScript): string {
  const base = `${o.bootUrl}/images/builds/${o.imageKey}`;
  return fetchAndBoot({
    headline: `${o.tag}: booting build ${o.buildId}`,
    kernelUrl: `${base}/bzImage`,
    kernelArgs: [
      ...(o.manifest.init ? [`init=${o.manifest.init}`] : []),
      ...o.manifest.kernelParams,
      `metal.boot_url=${o.bootUrl}`,
      `metal.service_tag=${o.tag}`,
      `metal.build_id=${o.buildId}`,
      `metal.boot_token=${o.bootToken}`,
    ],
    initrdUrl: `${base}/initrd`,
    selfUrl: o.selfUrl,
  });
}

/** Prints why the machine waits, sleeps, and asks again (replacing itself, so nothing piles up). */
export function renderHoldScript(o: { selfUrl: string; messages: string[]; sleepSeconds: number }): string {
  return script([
    ':wait',
    ...o.messages.map(echo),
    echo(`asking the boot server again in ${o.sleepSeconds} s`),
    `sleep ${o.sleepSeconds}`,
    `chain --replace --autofree ${word(o.selfUrl)} || goto wait`,
  ]);
}

/**
 * `/boot.ipxe`, for sites whose iPXE has no embedded script: chains the machine's own script with
 * its serial (URI-encoded, as vendor placeholders have spaces), the MAC of the NIC it boots through
 * (`${netX/mac}`: net0 is the first NIC iPXE found, often a management port) and its SMBIOS UUID.
 */
export function renderEntryScript(bootUrl: string): string {
  return script([
    ':retry',
    `chain --replace --autofree ${word(bootUrl)}/nixos/machines/\${serial:uristring}.ipxe?mac=${BOOTING_NIC_MAC}&uuid=\${uuid} || goto failed`,
    ':failed',
    echo(`the boot server did not answer, retrying in ${RETRY_DELAY_SECONDS} s`),
    `sleep ${RETRY_DELAY_SECONDS}`,
    'goto retry',
  ]);
}
