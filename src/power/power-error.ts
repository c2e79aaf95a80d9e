/**
 * Why a BMC call failed, as a small closed set. Each kind has a stable code; the HTTP edge maps them
 * with powerErrorStatus (power-error-status.ts).
 */
export type PowerErrorKind =
  /** The BMC refused the user name or password (or the user lacks the privilege). */
  | 'auth_failed'
  /** Nothing answered at the address (refused, no route, name not found). */
  | 'unreachable'
  /** The BMC did not answer in time. */
  | 'timeout'
  /** Something answered, but not a BMC answer we understand (not JSON, not IPMI, wrong shape). */
  | 'bad_answer'
  /** The BMC understood and said no (e.g. the action is not possible in its current state). */
  | 'refused'
  /** The BMC reported a failure of its own (Redfish 5xx). */
  | 'bmc_failed'
  /** The TLS certificate was not trusted (self-signed without a pin, wrong pin, wrong host name). */
  | 'tls_untrusted';

export const POWER_ERROR_CODES: Record<PowerErrorKind, string> = {
  auth_failed: 'bmc_auth_failed',
  unreachable: 'bmc_unreachable',
  timeout: 'bmc_timeout',
  bad_answer: 'bmc_bad_answer',
  refused: 'bmc_refused',
  bmc_failed: 'bmc_failed',
  tls_untrusted: 'bmc_tls_untrusted',
};

/** Kinds worth one more try: the next attempt may well get through. */
const RETRYABLE: ReadonlySet<PowerErrorKind> = new Set(['unreachable', 'timeout', 'bad_answer', 'bmc_failed']);

/** A failed BMC call. `message` is for people and names the BMC's answer; it never carries a credential. */
export class PowerError extends Error {
  readonly code: string;
  /** The machine the call was for, e.g. `ABC123`, once known (for log lines; never in the API's answer). */
  serviceTag: string | undefined;

  constructor(
    readonly kind: PowerErrorKind,
    message: string,
    /** The BMC's own words, trimmed, e.g. `RAKP 2 HMAC is invalid`. */
    readonly bmcAnswer?: string,
  ) {
    super(message);
    this.name = 'PowerError';
    this.code = POWER_ERROR_CODES[kind];
  }

  get isRetryable(): boolean {
    return RETRYABLE.has(this.kind);
  }
}

/** At most this many characters of a BMC's answer are kept in messages. */
const MAX_ANSWER = 200;

/** One line of a BMC's answer, fit for a message: control characters removed, shortened. */
export function trimAnswer(text: string): string {
  // eslint-disable-next-line no-control-regex
  const line = text.replace(/[\u0000-\u001f\u007f]+/g, ' ').replace(/\s+/g, ' ').trim();
  return line.length > MAX_ANSWER ? `${line.slice(0, MAX_ANSWER)}…` : line;
}
