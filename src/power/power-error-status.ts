import type { PowerErrorKind } from './power-error.ts';

/**
 * The HTTP status an API answer carries for each kind of BMC failure: the BMC said no (409), the BMC
 * failed us as an upstream (502), or it did not answer in time (504).
 */
export function powerErrorStatus(kind: PowerErrorKind): 409 | 502 | 504 {
  switch (kind) {
    case 'refused':
      return 409;
    case 'timeout':
      return 504;
    case 'auth_failed':
    case 'unreachable':
    case 'bad_answer':
    case 'bmc_failed':
    case 'tls_untrusted':
      return 502;
  }
}
