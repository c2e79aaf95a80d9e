import { ConflictError, DomainError, InvalidInputError, NotFoundError } from '../core/errors.ts';
import { DuplicateKeyError, type Storage } from '../core/ports.ts';
import type { Actor, BmcCredentialSet, Machine, MachinePower, PowerState, StoredBmc } from '../core/types.ts';
import { nowIso } from '../core/types.ts';
import { BmcPassword, describeAddress, describeBmc, parseBmcAddress, type BmcTarget } from './bmc-target.ts';
import type { PowerDriver } from './power-driver.ts';
import { PowerError } from './power-error.ts';
import { powerErrorStatus } from './power-error-status.ts';
import type { PolledMachine, PowerPollerPorts } from './power-poller.ts';
import { parseBmcSettings, parsePowerRequest, powerStateBody } from './power-request.ts';
import type { PowerLogger, PowerRequest, PowerResult, PowerRunner, PowerStep } from './power-runner.ts';

/** Seals and opens stored secrets (the auth service's secret box). */
export interface SecretSealer {
  encrypt(plaintext: string, context: string): string;
  decrypt(sealed: string, context: string): string;
}

export interface MachinePowerOptions {
  storage: Storage;
  secrets: SecretSealer;
  /** The one runner of the process (bounded concurrency, timeout, retry). */
  runner: PowerRunner;
  /** The driver for a BMC (createPowerDriver; a fake in tests). */
  driverFor: (target: BmcTarget) => PowerDriver;
  /** A machine by id or service tag; throws NotFoundError. */
  findMachine: (idOrTag: string) => Promise<Machine>;
  logger?: PowerLogger;
}

/** A machine's BMC as the API shows it: never the password. */
export interface BmcView {
  type: 'ipmi' | 'redfish';
  address: string;
  /** The machine's own user name, or the credential set's. */
  username: string;
  /** The credential set used instead of the machine's own credentials. */
  credential_set: string | null;
  verify_tls: boolean;
  tls_fingerprint: string | null;
  tls_ca_bundle: string | null;
  auth: 'session' | 'basic';
  system_id: string | null;
  reboot_on_publish: boolean;
  power_state: PowerState;
  checked_at: string | null;
}

/** A credential set as the API shows it: never the password. */
export interface CredentialSetView {
  name: string;
  username: string;
  machines: number;
  created_at: string;
  updated_at: string;
}

/** `{power_state, checked_at}`; `checked_at` is null when the BMC was never asked. */
export interface PowerStateBody {
  power_state: PowerState;
  checked_at: string | null;
}

/** One machine's outcome in a bulk power action. */
export type BulkPowerResult =
  | ({ id: string; machine_id: number; ok: true } & PowerStateBody)
  | { id: string; machine_id: number | null; ok: false; status: number; error: { code: string; message: string } };

const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
/** A machine's own failure in a bulk call, with the status it would have alone. */
const BULK_STATUS: Partial<Record<string, number>> = { invalid_input: 400, not_found: 404, conflict: 409 };
const SET_FIELDS = ['credential_set', 'reboot_on_publish'];

/** Where a machine's own sealed password is bound (the secret box authenticates it). */
export const machineContext = (machineId: number) => `machine_power.bmc_password:${machineId}`;
/** Where a credential set's sealed password is bound. */
export const setContext = (name: string) => `bmc_credential_sets.password:${name}`;

/**
 * Power control of enrolled machines: their BMC settings (password sealed by the secret box), credential
 * sets, power actions through the one runner, the state the poller keeps fresh, and reboot-on-publish.
 * Every action is an event with who asked and the BMC's answer; no password reaches an event, a log line
 * or an answer.
 */
export class MachinePowerService {
  /** The action running on each machine in this process: a second one waits for it (never two at once on a BMC). */
  private readonly busy = new Map<number, Promise<unknown>>();

  constructor(private readonly o: MachinePowerOptions) {}

  /** The machine's BMC, or NotFoundError when it has none. */
  async getBmc(idOrTag: string): Promise<BmcView> {
    const machine = await this.o.findMachine(idOrTag);
    const power = await this.o.storage.power.get(machine.id);
    if (!power?.bmc) throw new NotFoundError(`machine ${machine.service_tag} has no BMC; set one with PUT /api/v1/machines/${machine.service_tag}/bmc`);
    return this.view(power, power.bmc);
  }

  /**
   * Sets a machine's BMC from the API's body: `{type, address?, username?, password?, credential_set?,
   * verify_tls?, tls_fingerprint?, tls_ca_bundle?, auth?, system_id?, reboot_on_publish?}`. Without an
   * address, the stored one or else the one the registration agent reported (`hardware.bmc.address`) is
   * used; without a user name or password, the machine's stored ones are kept.
   */
  async setBmc(idOrTag: string, input: unknown, actor: Actor): Promise<BmcView> {
    const machine = await this.o.findMachine(idOrTag);
    if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new InvalidInputError('the BMC settings must be a JSON object');
    const body = { ...(input as Record<string, unknown>) };
    const rebootOnPublish = body.reboot_on_publish;
    if (rebootOnPublish !== undefined && typeof rebootOnPublish !== 'boolean') {
      throw new InvalidInputError('reboot_on_publish must be true or false', { field: 'reboot_on_publish' });
    }
    const setName = body.credential_set;
    for (const field of SET_FIELDS) delete body[field];
    const existing = (await this.o.storage.power.get(machine.id))?.bmc ?? null;
    if (body.address === undefined) {
      const known = existing?.address ?? reportedBmcAddress(machine);
      if (!known) throw new InvalidInputError('address is required: host[:port] (the machine reported no BMC address)', { field: 'address' });
      body.address = known;
    }
    let set: BmcCredentialSet | undefined;
    let keptPassword: string | null = null;
    if (setName !== undefined && setName !== null) {
      if (typeof setName !== 'string' || !NAME.test(setName)) throw new InvalidInputError('credential_set must be the name of a credential set', { field: 'credential_set' });
      if (body.username !== undefined || body.password !== undefined) {
        throw new InvalidInputError('give credential_set, or username and password, not both', { field: 'credential_set' });
      }
      set = await this.o.storage.bmcCredentialSets.findByName(setName);
      if (!set) throw new InvalidInputError(`credential set ${setName} does not exist; create it with POST /api/v1/bmc-credential-sets`, { field: 'credential_set' });
      // Validated with stand-ins: the set's own values are checked when the set is written.
      body.username = set.username;
      body.password = 'credential-set';
    } else {
      body.username ??= existing?.username ?? undefined;
      if (body.password === undefined && existing?.password_sealed) {
        keptPassword = existing.password_sealed;
        body.password = 'kept';
      }
    }
    const target = parseBmcSettings(body);
    const stored: StoredBmc = {
      type: target.type,
      address: describeAddress(target.address),
      username: set ? null : target.username,
      password_sealed: set ? null : (keptPassword ?? this.o.secrets.encrypt(target.password.reveal(), machineContext(machine.id))),
      credential_set_id: set ? set.id : null,
      verify_tls: target.type === 'redfish' ? target.tls.verify : true,
      tls_fingerprint: target.type === 'redfish' ? (target.tls.fingerprint ?? null) : null,
      tls_ca_bundle: target.type === 'redfish' ? (target.tls.caBundle ?? null) : null,
      auth: target.type === 'redfish' ? target.auth : 'session',
      system_id: target.type === 'redfish' ? (target.systemId ?? null) : null,
    };
    const power = await this.o.storage.transaction(async (tx) => {
      const saved = await tx.power.setBmc(machine.id, stored, rebootOnPublish as boolean | undefined, nowIso());
      await tx.events.record({
        kind: 'machine.bmc_set',
        machineId: machine.id,
        actor,
        message: `${machine.service_tag}: BMC set to ${describeBmc(target)}${set ? ` with credential set ${set.name}` : ` as ${target.username}`}`,
        data: { type: stored.type, address: stored.address, credential_set: set?.name ?? null, reboot_on_publish: saved.reboot_on_publish },
      });
      return saved;
    });
    return this.view(power, power.bmc!);
  }

  /** Forgets a machine's BMC; NotFoundError when it had none. */
  async clearBmc(idOrTag: string, actor: Actor): Promise<void> {
    const machine = await this.o.findMachine(idOrTag);
    await this.o.storage.transaction(async (tx) => {
      if (!(await tx.power.clearBmc(machine.id, nowIso()))) throw new NotFoundError(`machine ${machine.service_tag} has no BMC`);
      await tx.events.record({ kind: 'machine.bmc_removed', machineId: machine.id, actor, message: `${machine.service_tag}: BMC removed` });
    });
  }

  /** The last state a BMC reported (`unknown`, never checked, for a machine without a BMC). */
  async getState(idOrTag: string): Promise<PowerStateBody> {
    const machine = await this.o.findMachine(idOrTag);
    const power = await this.o.storage.power.get(machine.id);
    if (!power?.bmc) return { power_state: 'unknown', checked_at: null };
    return { power_state: power.power_state, checked_at: power.checked_at };
  }

  /** Power state of many machines at once (e.g. for a list page), by machine id. */
  async states(machineIds: number[]): Promise<Map<number, { power_state: PowerState; checked_at: string | null }>> {
    const rows = await this.o.storage.power.states(machineIds);
    return new Map(rows.map((r) => [r.machine_id, { power_state: r.power_state, checked_at: r.checked_at }]));
  }

  /**
   * Performs `{action, boot_device?}` on a machine's BMC and answers with the state after it. Throws
   * InvalidInputError for a bad request, ConflictError when the machine has no BMC, PowerError with the
   * BMC's answer when the BMC fails. Either way the action is an event.
   */
  async act(idOrTag: string, input: unknown, actor: Actor): Promise<PowerStateBody> {
    const request = parsePowerRequest(input);
    const machine = await this.o.findMachine(idOrTag);
    const { target } = await this.targetOf(machine);
    const result = await this.perform(machine, target, request, actor, {});
    return powerStateBody(result);
  }

  /** The same action on many machines (by id or tag), each with its own outcome. */
  async actMany(ids: string[], input: unknown, actor: Actor): Promise<BulkPowerResult[]> {
    const request = parsePowerRequest(input);
    return Promise.all(
      ids.map(async (id): Promise<BulkPowerResult> => {
        let machineId: number | null = null;
        try {
          const machine = await this.o.findMachine(id);
          machineId = machine.id;
          const { target } = await this.targetOf(machine);
          return { id, machine_id: machine.id, ok: true, ...powerStateBody(await this.perform(machine, target, request, actor, {})) };
        } catch (err) {
          if (err instanceof PowerError) return { id, machine_id: machineId, ok: false, status: powerErrorStatus(err.kind), error: { code: err.code, message: err.message } };
          if (err instanceof DomainError && err.code in BULK_STATUS) return { id, machine_id: machineId, ok: false, status: BULK_STATUS[err.code]!, error: { code: err.code, message: err.message } };
          throw err;
        }
      }),
    );
  }

  /**
   * After a build is published: when its machine has a BMC and reboot-on-publish, and the build is the
   * image the machine boots, sets next boot PXE and cycles it (or powers it on when off). Each build
   * reboots its machine at most once, whichever process sees the publication first. Events show each
   * step. Never throws: a failure is an event and a log line.
   */
  async rebootOnPublish(build: { id: number; machine_id: number; status: string }, imageBuildId: number | null): Promise<'rebooted' | 'failed' | 'skipped'> {
    if (build.status !== 'success' || imageBuildId !== build.id) return 'skipped';
    const power = await this.o.storage.power.get(build.machine_id);
    if (!power?.bmc || !power.reboot_on_publish) return 'skipped';
    if (!(await this.o.storage.power.claimReboot(build.machine_id, build.id))) return 'skipped';
    const actor: Actor = { kind: 'system', name: 'system' };
    let tag: string | undefined;
    try {
      const machine = await this.o.findMachine(String(build.machine_id));
      tag = machine.service_tag;
      const { target } = await this.targetOf(machine);
      await this.o.storage.events.record({
        kind: 'power.reboot_on_publish',
        machineId: machine.id,
        buildId: build.id,
        actor,
        message: `${machine.service_tag}: build ${build.id} published; next boot PXE and power cycle through ${describeBmc(target)}`,
      });
      const steps = async (step: PowerStep) => {
        await this.o.storage.events.record({
          kind: 'power.step',
          machineId: machine.id,
          buildId: build.id,
          actor,
          message: `${machine.service_tag}: ${step.step} ${step.outcome === 'ok' ? 'ok' : `failed: ${step.message}`}`,
          data: stepData(step),
        });
      };
      await this.perform(machine, target, { action: 'cycle', bootDevice: 'pxe' }, actor, { buildId: build.id, eachStep: steps });
      return 'rebooted';
    } catch (err) {
      const who = tag ?? `machine ${build.machine_id}`;
      this.o.logger?.warn({ err, build: build.id, service_tag: tag ?? null }, `power: reboot of ${who} on publish of build ${build.id} failed: ${(err as Error).message}`);
      return 'failed';
    }
  }

  /** What the poller needs: every machine with a BMC, and where a check's outcome goes. */
  pollerPorts(): PowerPollerPorts<number> {
    return {
      listMachines: async () => {
        const out: Array<PolledMachine<number>> = [];
        for (const power of await this.o.storage.power.listWithBmc()) {
          try {
            const target = await this.targetFromStored(power.machine_id, power.bmc!);
            out.push({ key: power.machine_id, serviceTag: power.service_tag, driver: () => this.o.driverFor(target) });
          } catch (err) {
            this.o.logger?.warn({ err, service_tag: power.service_tag }, `power: ${power.service_tag}'s BMC cannot be used: ${(err as Error).message}`);
          }
        }
        return out;
      },
      record: async (machineId, outcome) => {
        await this.o.storage.power.recordState(machineId, outcome.ok ? outcome.result.powerState : 'unknown', (outcome.ok ? outcome.result.checkedAt : new Date()).toISOString());
      },
    };
  }

  // Credential sets

  async listCredentialSets(): Promise<CredentialSetView[]> {
    const sets = await this.o.storage.bmcCredentialSets.list();
    return Promise.all(sets.map(async (s) => this.setView(s)));
  }

  /** `{name, username, password}` */
  async createCredentialSet(input: unknown, actor: Actor): Promise<CredentialSetView> {
    const body = asObject(input);
    const name = body.name;
    if (typeof name !== 'string' || !NAME.test(name)) {
      throw new InvalidInputError('name must be 1 to 64 characters of A-Z a-z 0-9 . _ - (starting with a letter or digit)', { field: 'name' });
    }
    const { username, password } = checkCredentials(body, true);
    try {
      const set = await this.o.storage.transaction(async (tx) => {
        const created = await tx.bmcCredentialSets.insert({ name, username: username!, passwordSealed: this.o.secrets.encrypt(password!, setContext(name)), now: nowIso() });
        await tx.events.record({ kind: 'bmc_credential_set.created', actor, message: `BMC credential set ${name} created (user ${username})` });
        return created;
      });
      return this.setView(set);
    } catch (err) {
      if (err instanceof DuplicateKeyError) throw new ConflictError(`credential set ${name} already exists`);
      throw err;
    }
  }

  /** `{username?, password?}` */
  async updateCredentialSet(name: string, input: unknown, actor: Actor): Promise<CredentialSetView> {
    const set = await this.findSet(name);
    const { username, password } = checkCredentials(asObject(input), false);
    const updated = await this.o.storage.transaction(async (tx) => {
      const changed = await tx.bmcCredentialSets.update(set.id, {
        now: nowIso(),
        ...(username !== undefined ? { username } : {}),
        ...(password !== undefined ? { passwordSealed: this.o.secrets.encrypt(password, setContext(set.name)) } : {}),
      });
      const what = [username !== undefined ? 'user name' : '', password !== undefined ? 'password' : ''].filter(Boolean).join(' and ') || 'nothing';
      await tx.events.record({ kind: 'bmc_credential_set.updated', actor, message: `BMC credential set ${set.name}: ${what} changed` });
      return changed!;
    });
    return this.setView(updated);
  }

  /** Refused (ConflictError) while a machine uses the set. */
  async deleteCredentialSet(name: string, actor: Actor): Promise<void> {
    const set = await this.findSet(name);
    await this.o.storage.transaction(async (tx) => {
      const used = await tx.bmcCredentialSets.usageCount(set.id);
      if (used > 0) throw new ConflictError(`credential set ${set.name} is used by ${used} machine(s); give them other credentials first`);
      await tx.bmcCredentialSets.delete(set.id);
      await tx.events.record({ kind: 'bmc_credential_set.deleted', actor, message: `BMC credential set ${set.name} deleted` });
    });
  }

  // Internals

  /** Runs one action on a machine after any other action on it in this process has ended. */
  private perform(
    machine: Machine,
    target: BmcTarget,
    request: PowerRequest,
    actor: Actor,
    extra: { buildId?: number; eachStep?: (step: PowerStep) => Promise<void> },
  ): Promise<PowerResult> {
    const before = this.busy.get(machine.id) ?? Promise.resolve();
    const run = before.catch(() => undefined).then(() => this.performNow(machine, target, request, actor, extra));
    const settled = run.catch(() => undefined);
    this.busy.set(machine.id, settled);
    void settled.then(() => {
      if (this.busy.get(machine.id) === settled) this.busy.delete(machine.id);
    });
    return run;
  }

  private async performNow(
    machine: Machine,
    target: BmcTarget,
    request: PowerRequest,
    actor: Actor,
    extra: { buildId?: number; eachStep?: (step: PowerStep) => Promise<void> },
  ): Promise<PowerResult> {
    const steps: PowerStep[] = [];
    const pending: Array<Promise<void>> = [];
    const bmc = describeBmc(target);
    const what = `${request.action}${request.bootDevice ? ` (next boot ${request.bootDevice})` : ''}`;
    const data = { action: request.action, boot_device: request.bootDevice ?? null, bmc, steps };
    try {
      const result = await this.o.runner.run(this.o.driverFor(target), request, {
        serviceTag: machine.service_tag,
        onStep: (step) => {
          steps.push(step);
          if (extra.eachStep) pending.push(extra.eachStep(step));
        },
      });
      await Promise.all(pending);
      await this.o.storage.transaction(async (tx) => {
        await tx.power.recordState(machine.id, result.powerState, result.checkedAt.toISOString());
        await tx.events.record({
          kind: 'power.action',
          machineId: machine.id,
          buildId: extra.buildId ?? null,
          actor,
          message: `${machine.service_tag}: power ${what} through ${bmc}: the machine is ${result.powerState}`,
          data: { ...data, steps: steps.map(stepData), outcome: 'ok', power_state: result.powerState },
        });
      });
      return result;
    } catch (err) {
      await Promise.allSettled(pending);
      if (err instanceof PowerError) {
        err.serviceTag = machine.service_tag;
        await this.o.storage.events.record({
          kind: 'power.failed',
          machineId: machine.id,
          buildId: extra.buildId ?? null,
          actor,
          message: `${machine.service_tag}: power ${what} failed: ${err.message}`,
          data: { ...data, steps: steps.map(stepData), outcome: 'failed', code: err.code, bmc_answer: err.bmcAnswer ?? null },
        });
      }
      throw err;
    }
  }

  private async targetOf(machine: Machine): Promise<{ power: MachinePower; target: BmcTarget }> {
    const power = await this.o.storage.power.get(machine.id);
    if (!power?.bmc) throw new ConflictError(`machine ${machine.service_tag} has no BMC; set one with PUT /api/v1/machines/${machine.service_tag}/bmc`);
    return { power, target: await this.targetFromStored(machine.id, power.bmc) };
  }

  /** The driver's target from a stored BMC: the password opened from the machine's row or its credential set. */
  private async targetFromStored(machineId: number, bmc: StoredBmc): Promise<BmcTarget> {
    let username: string;
    let password: string;
    if (bmc.credential_set_id !== null) {
      const set = await this.o.storage.bmcCredentialSets.findById(bmc.credential_set_id);
      if (!set) throw new ConflictError(`machine ${machineId}'s credential set no longer exists`);
      username = set.username;
      password = this.open(set.password_sealed, setContext(set.name), `credential set ${set.name}`);
    } else {
      if (bmc.username === null || bmc.password_sealed === null) throw new ConflictError(`machine ${machineId}'s BMC has no credentials`);
      username = bmc.username;
      password = this.open(bmc.password_sealed, machineContext(machineId), `machine ${machineId}'s BMC`);
    }
    const address = parseBmcAddress(bmc.address, bmc.type);
    if (bmc.type === 'ipmi') return { type: 'ipmi', address, username, password: new BmcPassword(password) };
    return {
      type: 'redfish',
      address,
      username,
      password: new BmcPassword(password),
      tls: { verify: bmc.verify_tls, ...(bmc.tls_fingerprint ? { fingerprint: bmc.tls_fingerprint } : {}), ...(bmc.tls_ca_bundle ? { caBundle: bmc.tls_ca_bundle } : {}) },
      auth: bmc.auth,
      ...(bmc.system_id ? { systemId: bmc.system_id } : {}),
    };
  }

  /** Opens a sealed password; one sealed with another secret key is a conflict the operator can fix. */
  private open(sealed: string, context: string, what: string): string {
    try {
      return this.o.secrets.decrypt(sealed, context);
    } catch {
      throw new ConflictError(`the password of ${what} does not open with this server's secret key (METAL_SECRET_KEY changed?); set it again`);
    }
  }

  private async view(power: MachinePower, bmc: StoredBmc): Promise<BmcView> {
    const set = bmc.credential_set_id === null ? undefined : await this.o.storage.bmcCredentialSets.findById(bmc.credential_set_id);
    return {
      type: bmc.type,
      address: bmc.address,
      username: set?.username ?? bmc.username ?? '',
      credential_set: set?.name ?? null,
      verify_tls: bmc.verify_tls,
      tls_fingerprint: bmc.tls_fingerprint,
      tls_ca_bundle: bmc.tls_ca_bundle,
      auth: bmc.auth,
      system_id: bmc.system_id,
      reboot_on_publish: power.reboot_on_publish,
      power_state: power.power_state,
      checked_at: power.checked_at,
    };
  }

  private async findSet(name: string): Promise<BmcCredentialSet> {
    const set = NAME.test(name) ? await this.o.storage.bmcCredentialSets.findByName(name) : undefined;
    if (!set) throw new NotFoundError(`credential set ${name.slice(0, 64)} not found`);
    return set;
  }

  private async setView(set: BmcCredentialSet): Promise<CredentialSetView> {
    return { name: set.name, username: set.username, machines: await this.o.storage.bmcCredentialSets.usageCount(set.id), created_at: set.created_at, updated_at: set.updated_at };
  }
}

/** A step as an event stores it (it never carries a credential). */
function stepData(step: PowerStep): Record<string, unknown> {
  return { step: step.step, attempt: step.attempt, outcome: step.outcome, ...(step.code ? { code: step.code } : {}), ...(step.message ? { message: step.message } : {}) };
}

/** The BMC address the registration agent reported, if any (`hardware.bmc.address` or `.ip_address`). */
function reportedBmcAddress(machine: Machine): string | undefined {
  const bmc = machine.hardware.bmc;
  if (bmc === null || typeof bmc !== 'object') return undefined;
  const record = bmc as Record<string, unknown>;
  const address = record.address ?? record.ip_address ?? record.ipv4;
  return typeof address === 'string' && address !== '' ? address : undefined;
}

function asObject(input: unknown): Record<string, unknown> {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) throw new InvalidInputError('the body must be a JSON object');
  return input as Record<string, unknown>;
}

/** The user name and password of a credential set, checked like a machine's (the password never echoed). */
function checkCredentials(body: Record<string, unknown>, required: boolean): { username?: string; password?: string } {
  const { username, password } = body;
  for (const key of Object.keys(body)) {
    if (!['name', 'username', 'password'].includes(key)) throw new InvalidInputError(`unknown field ${JSON.stringify(key.slice(0, 40))}`, { field: key });
  }
  if (required || username !== undefined) {
    // eslint-disable-next-line no-control-regex
    if (typeof username !== 'string' || username.length < 1 || username.length > 64 || /[\u0000-\u001f\u007f:]/.test(username)) {
      throw new InvalidInputError('username is required: 1 to 64 characters, no control characters or colons', { field: 'username' });
    }
  }
  if (required || password !== undefined) {
    // eslint-disable-next-line no-control-regex
    if (typeof password !== 'string' || password.length < 1 || password.length > 256 || /[\u0000\n\r]/.test(password)) {
      throw new InvalidInputError('password is required: 1 to 256 characters, no line breaks', { field: 'password' });
    }
  }
  return { ...(username !== undefined ? { username: username as string } : {}), ...(password !== undefined ? { password: password as string } : {}) };
}
