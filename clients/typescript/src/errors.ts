/** Every error this package throws is a ProofreconClientError. */
export class ProofreconClientError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/**
 * No acceptable verdict arrived in time. Fail closed: a timeout never means "cleared".
 * The request may still be answered later; that answer is ignored.
 */
export class PreflightTimeoutError extends ProofreconClientError {
  readonly code = 'PREFLIGHT_TIMEOUT' as const;
  constructor(
    readonly requestId: string,
    readonly timeoutMs: number,
  ) {
    super(`no verdict for melt request ${requestId} within ${timeoutMs} ms`);
  }
}

/** The request could not be built or is invalid against wallet.melt-requests; nothing was sent. */
export class PreflightRequestError extends ProofreconClientError {
  readonly code = 'PREFLIGHT_REQUEST_INVALID' as const;
}

/** The request could not be published to Kafka. Fail closed. */
export class PreflightPublishError extends ProofreconClientError {
  readonly code = 'PREFLIGHT_PUBLISH_FAILED' as const;
  constructor(
    readonly requestId: string,
    cause: unknown,
  ) {
    super(`melt request ${requestId} could not be published`, { cause });
  }
}

/** The client was stopped while the preflight was waiting. Fail closed. */
export class PreflightClosedError extends ProofreconClientError {
  readonly code = 'PREFLIGHT_CLIENT_CLOSED' as const;
  constructor(readonly requestId: string) {
    super(`the preflight client stopped before melt request ${requestId} was answered`);
  }
}

/** An outgoing event (token status) is invalid against its contract; nothing was sent. */
export class ContractViolationError extends ProofreconClientError {
  readonly code = 'CONTRACT_VIOLATION' as const;
}

/** A version older than (or equal to) one already published for the same token. */
export class VersionRegressionError extends ProofreconClientError {
  readonly code = 'VERSION_REGRESSION' as const;
}
