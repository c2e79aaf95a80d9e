import { isMac, isPlaceholderSerial, isPlaceholderUuid, isServiceTag, isUuid } from '../core/validation.ts';
import { BOOT_TOKEN_LENGTH } from '../core/boot-token.ts';
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

/**
 * Where the resolver reads machines and builds. `peekTag`, `isUpToDate` and `onSuperseded` (the
 * in-memory table, see BootTable) let it answer a repeated request at once, from the row it answered
 * it from, for as long as that row is current.
 */
export type BootTargetLookup = Pick<BootTargetReader, 'findMachine' | 'buildFacts'> & {
  peekTag?(tag: string): Readonly<BootTarget> | undefined;
  isUpToDate?(): boolean;
  onSuperseded?(listener: (row: Readonly<BootTarget>) => void): void;
};

/** Mints the single-use tokens of one build (a `BootTokenMinter`, from BuildLifecycle.bootTokenMinter). */
export interface TokenMinter {
  mint(): string;
  /** Writes a fresh token issued at `now` (default: the clock), BOOT_TOKEN_LENGTH ASCII bytes, into `target` at `at`. */
  mintInto(target: Buffer, at: number, now?: number): void;
}

/** Where the resolver gets a build's minter. */
export interface BootTokens {
  bootTokenMinter(buildId: number, buildSecret: string): TokenMinter;
}

/**
 * An answer kept in memory, as bytes: what the boot listener's front writes for a repeated request.
 * An image script has a per-boot token: `body` holds BOOT_TOKEN_LENGTH placeholder bytes at
 * `tokenAt`, never sent as they are; each answer copies the body and mints a token into the copy.
 */
export interface KeptAnswer {
  readonly kind: ScriptKind;
  readonly machine: BootTarget;
  /** The script as UTF-8, with the token's place reserved when it has one. */
  readonly body: Buffer;
  /** Where the token goes in `body` and who mints it; undefined for a script without one. */
  readonly token: { readonly at: number; readonly minter: TokenMinter } | undefined;
  /** The last_seen_at batch its machine was last added to (`LastSeenRecorder.seenOnce`; -1: none yet). */
  seenInBatch: number;
}

/** The script of a kept answer (its `body` and `token`) as text, with a fresh token. */
export function keptScript(body: Buffer, token: KeptAnswer['token']): string {
  if (!token) return body.toString('utf8');
  const bytes = Buffer.from(body);
  token.minter.mintInto(bytes, token.at);
  return bytes.toString('utf8');
}

/** A script's bytes as kept: an image script's with BOOT_TOKEN_LENGTH placeholder bytes where its token goes. */
function keptBytes(script: string, image: ImageParts | undefined): Pick<KeptAnswer, 'body' | 'token'> {
  if (!image) return { body: Buffer.from(script, 'utf8'), token: undefined };
  const before = Buffer.from(image.before, 'utf8');
  return {
    body: Buffer.concat([before, Buffer.alloc(BOOT_TOKEN_LENGTH, 0x30), Buffer.from(image.after, 'utf8')]),
    token: { at: before.length, minter: image.minter },
  };
}

/** A request answered before, kept while its machine's row is the one it was answered from. */
interface Answered extends KeptAnswer {
  /** The request's `?mac=` and `?uuid=`, which must be the same for the answer to be. */
  readonly mac: string | undefined;
  readonly uuid: string | undefined;
  readonly row: Readonly<BootTarget>;
}

/** Seconds a machine waits while its build runs: short, so it boots soon after the build succeeds. */
export const BUILDING_SLEEP_SECONDS = 5;
/** Seconds a known machine without an image waits between asks. */
export const NO_IMAGE_SLEEP_SECONDS = 30;
/** Seconds a machine waits when its image or the registration image is unusable. */
export const BROKEN_IMAGE_SLEEP_SECONDS = 60;

/** A per-build token as generated (base64url); anything else is not written into a script. */
const BOOT_TOKEN_PATTERN = /^[A-Za-z0-9._~-]{16,256}$/;
/** Where a cached image script takes its per-boot token (a word the renderer accepts, never a token). */
const TOKEN_SLOT = 'METAL-BOOT-TOKEN-SLOT';
/** Rendered scripts kept (at most about 20 MiB): one per machine and URL form in a fleet of this size. */
const MAX_RENDERED = 20_000;
/** Decisions that depend on nothing but the machine's row (and its build's immutable files). */
const MEMO_KINDS = new Set<ScriptKind>(['image', 'hold-building', 'hold-no-image']);

/** What an image script is made of besides its per-boot token. */
interface ImageParts {
  minter: TokenMinter;
  before: string;
  after: string;
}

/** A query value an answer can be kept for: one string, or none (the router parses a repeated one into an array). */
function isPlainParam(value: unknown): value is string | undefined {
  return value === undefined || typeof value === 'string';
}

/** A build's image key as generated (base64url). */
const IMAGE_KEY_PATTERN = /^[A-Za-z0-9_-]{22,64}$/;

/** The boot server's decision table: which script a machine gets, from its tag, MAC and UUID. */
export class BootScriptResolver {
  private readonly warned = new Set<string>();
  /**
   * Scripts as rendered, by everything they are rendered from; an image script as the text before
   * and after its per-boot token.
   */
  private readonly rendered = new Map<string, [string, string]>();

  /** Requests by tag (with their `?mac=` and `?uuid=`), answered from the machine's row as it was (see resolveNow). */
  private readonly answered = new Map<string, Answered>();

  constructor(
    private readonly reader: BootTargetLookup,
    private readonly catalog: Pick<ImageCatalog, 'registration' | 'build'>,
    private readonly settings: { bootUrl: string; enrollToken: string | undefined; afterEnroll: 'reboot' | 'poweroff' | 'hold' },
    private readonly logger: Logger,
    /** Mints the single-use token an image script puts on its kernel line. */
    private readonly tokens: BootTokens,
  ) {
    // Answers are kept only where the reader says when a row stops being current.
    this.followsRows = reader.onSuperseded !== undefined && reader.isUpToDate !== undefined;
    reader.onSuperseded?.((row) => {
      if (this.answered.get(row.serviceTag)?.row === row) this.answered.delete(row.serviceTag);
    });
  }

  /** Whether the reader reports superseded rows, so answers can be kept (see keptAnswer). */
  private readonly followsRows: boolean;

  /**
   * The answer without waiting, when the same request (tag, `?mac=`, `?uuid=`) was answered by its
   * machine's own tag and that machine's row in the table has not changed since: the same decision
   * and script (an image script with a fresh token). Undefined otherwise; then `resolve` answers.
   */
  resolveNow(tagParam: string, macParam: unknown, uuidParam: unknown): ResolvedScript | undefined {
    const kept = this.keptAnswer(tagParam, macParam, uuidParam);
    return kept && { kind: kept.kind, machine: kept.machine, script: keptScript(kept.body, kept.token) };
  }

  /** `resolveNow` as bytes, for the boot listener's front to frame and mint into (see KeptAnswer). */
  keptAnswer(tagParam: string, macParam: unknown, uuidParam: unknown): KeptAnswer | undefined {
    const memo = this.answered.get(tagParam);
    // A kept answer's row is current while the answer is kept (the table's onSuperseded drops it).
    if (memo === undefined || memo.mac !== macParam || memo.uuid !== uuidParam || this.reader.isUpToDate?.() !== true) return undefined;
    return memo;
  }

  /**
   * The build a script request by this tag would boot now, as this server's table has it (null: no
   * image; undefined: no such machine). A reboot request is answered only once this is the new image.
   */
  async imageOf(tag: string): Promise<number | null | undefined> {
    return (await this.reader.findMachine('service_tag', tag))?.imageBuildId;
  }

  /** `tagParam` as requested (anything); `mac` and `uuid` as given in the query (anything). */
  async resolve(tagParam: string, macParam: unknown, uuidParam: unknown): Promise<ResolvedScript> {
    const tag = isServiceTag(tagParam) ? tagParam : undefined;
    const byTag = tag !== undefined && !isPlaceholderTag(tag) ? tag : undefined;
    const resolved = await this.decide(tag, byTag, macParam, uuidParam);
    const { image, ...answer } = resolved;
    const machine = answer.machine;
    const row = byTag === undefined || !this.followsRows ? undefined : this.reader.peekTag?.(byTag);
    // Kept only when the row read now is the one the decision was made from.
    if (isPlainParam(macParam) && isPlainParam(uuidParam) && machine && row && MEMO_KINDS.has(answer.kind) && row.id === machine.id && row.status === machine.status && row.imageBuildId === machine.imageBuildId && row.serviceTag === machine.serviceTag) {
      if (!this.answered.has(tagParam) && this.answered.size >= MAX_RENDERED) this.answered.delete(this.answered.keys().next().value as string);
      this.answered.set(tagParam, { mac: macParam, uuid: uuidParam, row, kind: answer.kind, machine, ...keptBytes(answer.script, image), seenInBatch: -1 });
    }
    return answer;
  }

  private async decide(tag: string | undefined, byTag: string | undefined, macParam: unknown, uuidParam: unknown): Promise<ResolvedScript & { image?: ImageParts }> {
    const mac = parseMac(macParam);
    // A firmware's shared placeholder UUID names no one machine: never look a machine up by it.
    const uuid = typeof uuidParam === 'string' && isUuid(uuidParam) && !isPlaceholderUuid(uuidParam) ? uuidParam.toLowerCase() : undefined;
    const found = await this.find(byTag, mac, uuid);
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
      const why = machine.status === 'failed' ? `${name} has no image: its last build failed, see it on the dashboard and build again` : `${name} is enrolled but has no image yet, build one for it`;
      return this.hold('hold-no-image', machine, selfUrl, [why], NO_IMAGE_SLEEP_SECONDS);
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
    // Everything but the token is the same at every boot of this build from this URL: rendered once.
    const key = `image ${buildId} ${facts.imageKey} ${machineTag} ${selfUrl}`;
    let parts = this.rendered.get(key);
    if (!parts) {
      const template = renderImageScript({
        bootUrl: this.settings.bootUrl,
        selfUrl,
        tag: machineTag,
        buildId,
        imageKey: facts.imageKey,
        bootToken: TOKEN_SLOT,
        manifest: image.manifest,
      });
      const at = template.indexOf(TOKEN_SLOT);
      parts = [template.slice(0, at), template.slice(at + TOKEN_SLOT.length)];
      this.remember(key, parts);
    }
    const minter = this.tokens.bootTokenMinter(buildId, facts.bootToken);
    const token = minter.mint();
    if (!BOOT_TOKEN_PATTERN.test(token)) throw new Error(`boot: refusing a malformed boot token for build ${buildId}`);
    return { kind: 'image', machine, script: parts[0] + token + parts[1], image: { minter, before: parts[0], after: parts[1] } };
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
    const key = `${kind} ${sleepSeconds} ${selfUrl} ${messages.join('\n')}`;
    let script = this.rendered.get(key)?.[0];
    if (script === undefined) {
      script = renderHoldScript({ selfUrl, messages, sleepSeconds });
      this.remember(key, [script, '']);
    }
    return { kind, machine, script };
  }

  /** Keeps a rendered script (about a kilobyte); when full, the oldest one kept goes. */
  private remember(key: string, parts: [string, string]): void {
    if (this.rendered.size >= MAX_RENDERED) this.rendered.delete(this.rendered.keys().next().value as string);
    this.rendered.set(key, parts);
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
