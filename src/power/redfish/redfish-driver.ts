import { describeAddress, describeBmc, type RedfishTarget } from '../bmc-target.ts';
import type { PowerCallOptions, PowerDriver, PowerState } from '../power-driver.ts';
import { PowerError } from '../power-error.ts';
import { RedfishClient, redfishPath, type RedfishResource } from './redfish-client.ts';

export const SYSTEMS_PATH = '/redfish/v1/Systems';

/** ResetType values to try for each action, best first (DMTF ComputerSystem.ResetType). */
const RESET_TYPES = {
  on: ['On', 'ForceOn'],
  off: ['ForceOff'],
  cycle: ['PowerCycle', 'ForceRestart'],
  reset: ['ForceRestart', 'PowerCycle'],
} as const;

export interface RedfishDriverOptions {
  /** Limit for one HTTPS request, in ms; the caller's signal may end it sooner. */
  requestTimeoutMs: number;
}

/** Drives a BMC through the DMTF Redfish ComputerSystem resource. */
export class RedfishDriver implements PowerDriver {
  readonly description: string;
  /** `10.0.0.5:443`, for messages that already say `redfish:`. */
  private readonly where: string;
  private readonly client: RedfishClient;
  private systemPath: string | undefined;

  constructor(
    private readonly target: RedfishTarget,
    options: RedfishDriverOptions,
  ) {
    this.description = describeBmc(target);
    this.where = describeAddress(target.address);
    this.client = new RedfishClient(target, options.requestTimeoutMs);
    if (target.systemId !== undefined) this.systemPath = `${SYSTEMS_PATH}/${encodeURIComponent(target.systemId)}`;
  }

  async status(call: PowerCallOptions): Promise<PowerState> {
    const { body } = await this.system(call);
    return toPowerState(body.PowerState);
  }

  powerOn(call: PowerCallOptions): Promise<void> {
    return this.resetAs('on', call);
  }

  powerOff(call: PowerCallOptions): Promise<void> {
    return this.resetAs('off', call);
  }

  powerCycle(call: PowerCallOptions): Promise<void> {
    return this.resetAs('cycle', call);
  }

  reset(call: PowerCallOptions): Promise<void> {
    return this.resetAs('reset', call);
  }

  async setNextBootPxe(call: PowerCallOptions): Promise<void> {
    const { path, body, etag } = await this.system(call);
    const boot = isObject(body.Boot) ? body.Boot : undefined;
    const allowed = boot?.['BootSourceOverrideTarget@Redfish.AllowableValues'];
    if (Array.isArray(allowed) && !allowed.includes('Pxe')) {
      throw new PowerError('refused', `redfish: ${this.where} does not offer a PXE boot override (it allows ${allowed.join(', ')})`);
    }
    await this.client.patch(path, { Boot: { BootSourceOverrideTarget: 'Pxe', BootSourceOverrideEnabled: 'Once' } }, call.signal, etag);
  }

  close(): Promise<void> {
    return this.client.close();
  }

  private async resetAs(action: keyof typeof RESET_TYPES, call: PowerCallOptions): Promise<void> {
    const { body } = await this.system(call);
    const actions = isObject(body.Actions) ? body.Actions : undefined;
    const reset = actions && isObject(actions['#ComputerSystem.Reset']) ? actions['#ComputerSystem.Reset'] : undefined;
    if (!reset) throw new PowerError('bad_answer', `redfish: ${this.where} offers no ComputerSystem.Reset action`);
    const target = redfishPath(reset.target, this.where);
    const allowed = reset['ResetType@Redfish.AllowableValues'];
    const candidates: readonly string[] = RESET_TYPES[action];
    const resetType = Array.isArray(allowed) ? candidates.find((c) => allowed.includes(c)) : candidates[0];
    if (!resetType) {
      throw new PowerError('refused', `redfish: ${this.where} offers no reset type for "${action}" (it allows ${(allowed as unknown[]).join(', ')})`);
    }
    await this.client.post(target, { ResetType: resetType }, call.signal);
  }

  /** The ComputerSystem resource, finding its path first (the first member of /Systems) when not configured. */
  private async system(call: PowerCallOptions): Promise<{ path: string; body: RedfishResource; etag: string | undefined }> {
    if (!this.systemPath) {
      const { body } = await this.client.get(SYSTEMS_PATH, call.signal);
      const members = body?.Members;
      const first = Array.isArray(members) && isObject(members[0]) ? members[0]['@odata.id'] : undefined;
      if (first === undefined) throw new PowerError('bad_answer', `redfish: ${this.where} lists no computer system under ${SYSTEMS_PATH}`);
      this.systemPath = redfishPath(first, this.where);
    }
    const { body, etag } = await this.client.get(this.systemPath, call.signal);
    if (!body || typeof body.PowerState !== 'string') {
      throw new PowerError('bad_answer', `redfish: ${this.where} returned a computer system without a PowerState`);
    }
    return { path: this.systemPath, body, etag };
  }
}

/** DMTF PowerState to ours: a machine that is shutting down still counts as on until it is off. */
export function toPowerState(value: unknown): PowerState {
  switch (value) {
    case 'On':
    case 'PoweringOff':
    case 'Paused':
      return 'on';
    case 'Off':
      return 'off';
    default:
      return 'unknown';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
