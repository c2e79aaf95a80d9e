import { isMac, isPlaceholderSerial, isPlaceholderUuid, isServiceTag, isUuid } from '../core/validation.ts';
import type { Logger } from '../core/logger.ts';
import type { BootTarget, BootTargetReader } from './boot-target-reader.ts';
import type { ImageCatalog } from '../images/image-catalog.ts';
import { renderHoldScript, renderImageScript, renderRegistrationScript, scriptUrl } from './ipxe-script.ts';

/** Which row of the decision table answered a request. */
export type ScriptKind = 'registration' | 'registration-ambiguous' | 'registration-missing' | 'image' | 'image-invalid' | 'hold-building' | 'hold-no-image';

/** A script and the decision behind it. */
export interface ResolvedScript {
  kind: ScriptKind;
  script: string;
  /** The machine the request was matched to, if any. */
  machine?: BootTarget;
}

/** Seconds a machine waits while its build runs: short, so it boots soon after the build succeeds. */
export const BUILDING_SLEEP_SECONDS = 5;
/** Seconds a known machine without an image waits between asks. */
export const NO_IMAGE_SLEEP_SECONDS = 30;
/** Seconds a machine waits when its image or the registration image is unusable. */
export const BROKEN_IMAGE_SLEEP_SECONDS = 60;

/** A per-build token as generated (base64url); anything else is not written into a script. */
const BOOT_TOKEN_PATTERN = /^[A-Za-z0-9._~-]{16,256}$/;
/** A build's image key as generated (base64url). */
const IMAGE_KEY_PATTERN = /^[A-Za-z0-9_-]{22,64}$/;

/** The boot server's decision table: which script a machine gets, from its tag, MAC and UUID. */
export class BootScriptResolver {
  private readonly warned = new Set<string>();

  constructor(
    private readonly reader: Pick<BootTargetReader, 'findMachine' | 'buildFacts'>,
    private readonly catalog: Pick<ImageCatalog, 'registration' | 'build'>,
    private readonly settings: { bootUrl: string; enrollToken: string | undefined; afterEnroll: 'reboot' | 'poweroff' | 'hold' },
    private readonly logger: Logger,
    /** Mints the single-use token an image script puts on its kernel line (BuildLifecycle.issueBootToken). */
    private readonly tokens: { issueBootToken(buildId: number, buildSecret: string): Promise<string> },
  ) {}

  /** `tagParam` as requested (anything); `mac` and `uuid` as given in the query (anything). */
  async resolve(tagParam: string, macParam: unknown, uuidParam: unknown): Promise<ResolvedScript> {
    const tag = isServiceTag(tagParam) ? tagParam : undefined;
    const mac = parseMac(macParam);
    // A firmware's shared placeholder UUID names no one machine: never look a machine up by it.
    const uuid = typeof uuidParam === 'string' && isUuid(uuidParam) && !isPlaceholderUuid(uuidParam) ? uuidParam.toLowerCase() : undefined;
    const found = await this.find(tag !== undefined && !isPlaceholderTag(tag) ? tag : undefined, mac, uuid);
    if (found.ambiguous !== undefined) {
      if (this.logger.isLevelEnabled('debug')) {
        this.logger.debug({ service_tag: tag ?? null, mac, uuid, reason: found.ambiguous }, `boot: no unambiguous machine for ${tag ?? 'an invalid tag'}, registration image`);
      }
      const resolved = await this.registration(tag, mac, uuid);
      return resolved.kind === 'registration' ? { ...resolved, kind: 'registration-ambiguous' } : resolved;
    }
    const machine = found.machine;
    if (!machine) return this.registration(tag, mac, uuid);

    const machineTag = isServiceTag(machine.serviceTag) ? machine.serviceTag : undefined;
    const selfUrl = scriptUrl(this.settings.bootUrl, machineTag ?? tag, mac, uuid);
    const name = machineTag ?? `machine ${machine.id}`;
    if (machine.status === 'building') {
      return this.hold('hold-building', machine, selfUrl, [`${name} has a build in progress`], BUILDING_SLEEP_SECONDS);
    }
    if (machine.imageBuildId === null) {
      return this.hold('hold-no-image', machine, selfUrl, [`${name} is enrolled but has no image yet, build one for it`], NO_IMAGE_SLEEP_SECONDS);
    }
    const buildId = machine.imageBuildId;
    const broken = (reason: string) => {
      this.warnOnce(`build:${buildId}:${reason}`, { service_tag: machine.serviceTag, build: buildId, reason }, `boot: the image of ${machine.serviceTag} (build ${buildId}) cannot be booted: ${reason}`);
      return this.hold('image-invalid', machine, selfUrl, [`the image of ${name} (build ${buildId}) cannot be booted: ${reason}`, 'rebuild it'], BROKEN_IMAGE_SLEEP_SECONDS);
    };
    const facts = await this.reader.buildFacts(buildId);
    if (!facts || facts.machineId !== machine.id) return broken('the build does not belong to this machine');
    if (!BOOT_TOKEN_PATTERN.test(facts.bootToken) || !IMAGE_KEY_PATTERN.test(facts.imageKey) || machineTag === undefined) {
      return broken('its boot token, image key or tag is malformed');
    }
    const image = await this.catalog.build(buildId);
    if (!image.ok) return broken(image.reason);
    return {
      kind: 'image',
      machine,
      script: renderImageScript({
        bootUrl: this.settings.bootUrl,
        selfUrl,
        tag: machineTag,
        buildId,
        imageKey: facts.imageKey,
        bootToken: await this.tokens.issueBootToken(buildId, facts.bootToken),
        manifest: image.manifest,
      }),
    };
  }

  /**
   * A real serial finds its machine by tag, or none: a machine found by MAC or UUID would be another
   * machine. Without one, the MAC and UUID must agree on one machine with no identity claim pending
   * (with a UUID in the request, a MAC match must own that UUID too); anything else is ambiguous.
   */
  private async find(tag: string | undefined, mac: string | undefined, uuid: string | undefined): Promise<{ machine?: BootTarget; ambiguous?: string }> {
    if (tag !== undefined) {
      const byTag = await this.reader.findMachine('service_tag', tag);
      return byTag ? { machine: byTag } : {};
    }
    const byMac = mac === undefined ? undefined : await this.reader.findMachine('mac_address', mac);
    const byUuid = uuid === undefined ? undefined : await this.reader.findMachine('system_uuid', uuid);
    if (byMac && byUuid && byMac.id !== byUuid.id) return { ambiguous: 'its MAC and its UUID belong to different machines' };
    if (byMac && uuid !== undefined && byMac.systemUuid !== uuid) return { ambiguous: 'the machine owning its MAC does not own its UUID' };
    const machine = byMac ?? byUuid;
    if (machine?.identityConflict) return { ambiguous: `${machine.serviceTag} has an identity conflict waiting for an operator` };
    return machine ? { machine } : {};
  }

  private async registration(tag: string | undefined, mac: string | undefined, uuid: string | undefined): Promise<ResolvedScript> {
    const selfUrl = scriptUrl(this.settings.bootUrl, tag, mac, uuid);
    const image = await this.catalog.registration();
    if (!image.ok) {
      this.warnOnce(`registration:${image.reason}`, { reason: image.reason }, 'boot: the registration image is unusable; unknown machines cannot enroll');
      const what = image.missing.length > 0 ? `has no registration image (${image.reason} in images/registration)` : `has an unusable registration image: ${image.reason}`;
      return {
        kind: 'registration-missing',
        script: renderHoldScript({ selfUrl, messages: [`the boot server ${what}`], sleepSeconds: BROKEN_IMAGE_SLEEP_SECONDS }),
      };
    }
    return {
      kind: 'registration',
      script: renderRegistrationScript({
        bootUrl: this.settings.bootUrl,
        selfUrl,
        tag,
        manifest: image.manifest,
        enrollToken: this.settings.enrollToken,
        bootMac: mac,
        afterEnroll: this.settings.afterEnroll,
      }),
    };
  }

  private hold(kind: ScriptKind, machine: BootTarget, selfUrl: string, messages: string[], sleepSeconds: number): ResolvedScript {
    return { kind, machine, script: renderHoldScript({ selfUrl, messages, sleepSeconds }) };
  }

  private warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    if (this.warned.has(key)) return;
    if (this.warned.size > 1000) this.warned.clear();
    this.warned.add(key);
    this.logger.warn(fields, message);
  }
}

/** A vendor placeholder serial, also as firmware spells it with dashes or underscores (`Default-string`). */
function isPlaceholderTag(tag: string): boolean {
  return isPlaceholderSerial(tag) || isPlaceholderSerial(tag.replace(/[-_]+/g, ' '));
}

/** `52:54:00:12:34:56` or iPXE's `52-54-00-12-34-56` (`:hexhyp`), lower-cased; anything else is ignored. */
function parseMac(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const colons = /^[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5}$/.test(value) ? value.replaceAll('-', ':') : value;
  return isMac(colons) ? colons.toLowerCase() : undefined;
}
