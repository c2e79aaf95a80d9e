import type { BmcTarget } from './bmc-target.ts';
import { IpmiDriver } from './ipmi/ipmi-driver.ts';
import type { PowerDriver } from './power-driver.ts';
import { RedfishDriver } from './redfish/redfish-driver.ts';

export interface PowerDriverOptions {
  /** Limit for one tool run or HTTPS request inside a driver, in ms. */
  callTimeoutMs: number;
  /** Defaults to `ipmitool` on PATH. */
  ipmitool?: string;
}

/** The driver for a BMC's protocol: the one place that chooses an adapter. */
export function createPowerDriver(target: BmcTarget, options: PowerDriverOptions): PowerDriver {
  switch (target.type) {
    case 'ipmi':
      return new IpmiDriver(target, { commandTimeoutMs: options.callTimeoutMs, ...(options.ipmitool ? { executable: options.ipmitool } : {}) });
    case 'redfish':
      return new RedfishDriver(target, { requestTimeoutMs: options.callTimeoutMs });
  }
}
