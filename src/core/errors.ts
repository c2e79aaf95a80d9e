/**
 * The closed set of domain errors. The core throws these; the HTTP edge maps them to a status and
 * the body `{"error": {"code", "message"}}` in one place (src/api/error-handler.ts).
 */
export type ErrorCode =
  | 'invalid_input'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'unprocessable'
  | 'rate_limited'
  | 'internal'
  | 'unavailable';

export class DomainError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra detail for the client, e.g. the field that was wrong. */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = 'DomainError';
  }
}

export class InvalidInputError extends DomainError {
  constructor(message: string, details?: Record<string, unknown>) {
    super('invalid_input', message, details);
  }
}

export class NotFoundError extends DomainError {
  constructor(message: string) {
    super('not_found', message);
  }
}

export class ConflictError extends DomainError {
  constructor(message: string) {
    super('conflict', message);
  }
}

/** The request is well-formed but the thing it asks for cannot be done in the current state. */
export class UnprocessableError extends DomainError {
  constructor(message: string) {
    super('unprocessable', message);
  }
}

export class UnauthorizedError extends DomainError {
  constructor(message = 'authentication required') {
    super('unauthorized', message);
  }
}

export class ForbiddenError extends DomainError {
  constructor(message = 'your role does not allow this') {
    super('forbidden', message);
  }
}

export class RateLimitedError extends DomainError {
  constructor(
    message: string,
    /** Seconds until a retry may succeed. */
    readonly retryAfterSeconds: number,
  ) {
    super('rate_limited', message);
  }
}
