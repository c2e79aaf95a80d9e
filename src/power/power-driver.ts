/** What a BMC reports about the machine's power. `unknown` when it answers something else. */
export type PowerState = 'on' | 'off' | 'unknown';

/** The actions an operator (or the reboot-on-publish flow) can ask for. */
export const POWER_ACTIONS = ['on', 'off', 'cycle', 'reset', 'status'] as const;
export type PowerAction = (typeof POWER_ACTIONS)[number];

/** Per-call options every driver honours. */
export interface PowerCallOptions {
  /** Aborted when the call's time is up; the driver stops its tool or request at once. */
  signal: AbortSignal;
}

/**
 * One machine's BMC, as the power engine drives it. IPMI, Redfish and the fake share this shape; a driver
 * throws PowerError for every failure the BMC causes.
 */
export interface PowerDriver {
  /** e.g. `ipmi 10.0.0.21:623`; never carries a credential. */
  readonly description: string;
  status(options: PowerCallOptions): Promise<PowerState>;
  powerOn(options: PowerCallOptions): Promise<void>;
  /** Hard off (not a graceful shutdown): the machine is about to boot a new image anyway. */
  powerOff(options: PowerCallOptions): Promise<void>;
  /** Off then on, done by the BMC. Only meaningful when the machine is on. */
  powerCycle(options: PowerCallOptions): Promise<void>;
  /** Hard reset (the reset button). */
  reset(options: PowerCallOptions): Promise<void>;
  /** The next boot (once) goes to the network (PXE). */
  setNextBootPxe(options: PowerCallOptions): Promise<void>;
  /** Releases what the driver holds (a Redfish session). Never throws. */
  close(): Promise<void>;
}
