"""Every error proofrecon raises, drawn in one place.

    ProofReconError                  code
    ├── ConfigError                  CONFIG_INVALID
    ├── ContractError                INVALID_REQUEST        (input violating a contract)
    ├── PreflightTimeout             PREFLIGHT_TIMEOUT      (client side: no verdict in time)
    ├── MintError
    │   ├── MintNotAllowed           MINT_NOT_ALLOWED       (not on the allow-list; not called)
    │   ├── MintProtocolError        MINT_PROTOCOL_ERROR    (an untrustworthy answer; not cached)
    │   │   └── CanaryMismatch       MINT_CANARY_MISMATCH   (a known-SPENT Y read as not SPENT)
    │   └── MintUnavailable          MINT_UNAVAILABLE       (the mint's truth cannot be had now)
    │       ├── MintRateLimited      MINT_RATE_LIMITED      (a 429, or our own budget is exhausted)
    │       ├── MintCircuitOpen      MINT_CIRCUIT_OPEN      (repeated failures; failing fast)
    │       ├── MintTransportError   MINT_TRANSPORT_ERROR   (connection refused/reset, 5xx)
    │       └── MintDeadlineExceeded DEADLINE_EXCEEDED      (the caller's deadline passed first)
    ├── SinkError                    SINK_ERROR
    │   └── SinkBackpressure         SINK_BACKPRESSURE      (retry after `retry_after` seconds)
    ├── StoreError                   STORE_ERROR            (a table write still failing after
    │                                                        retries: stop, do not ack)
    └── DeliveryError                DELIVERY_ERROR         (an output the broker did not take)
        ├── DeliveryRefused          DELIVERY_REFUSED       (refused for this message: too
        │                                                    large, a topic we may not write)
        └── DeliveryFailed           DELIVERY_FAILED        (still failing after retries: Kafka
                                                             itself is in trouble)

Codes are stable: match on `.code`, never on message text. Messages never carry a proof secret.
A `MintProtocolError` is a `MintError` but not `MintUnavailable`; the preflight maps both to
BLOCKED / MINT_UNAVAILABLE, since in either case the mint's truth is unknown. A `DeliveryRefused`
is the message's own fault (it goes to the dead-letter topic and the pipeline moves on); a
`DeliveryFailed` is not, and stops the worker before the input's offset can be committed.
"""

from __future__ import annotations

from streams.core.domain import ErrorKind


class ProofReconError(Exception):
    code = "PROOFRECON_ERROR"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


class ConfigError(ProofReconError):
    code = "CONFIG_INVALID"


class ContractError(ProofReconError):
    """Input that violates an event contract: why (for the dead-letter topic) and each failing
    field. The message is built from field locations and reasons only, never from input values."""

    code = "INVALID_REQUEST"

    def __init__(
        self,
        message: str,
        *,
        error_kind: ErrorKind = ErrorKind.VALIDATION_ERROR,
        problems: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.error_kind = error_kind
        self.problems = problems


class PreflightTimeout(ProofReconError):
    code = "PREFLIGHT_TIMEOUT"


class MintError(ProofReconError):
    code = "MINT_ERROR"

    def __init__(self, message: str, *, mint_url: str) -> None:
        super().__init__(f"{mint_url}: {message}")
        self.mint_url = mint_url


class MintNotAllowed(MintError):
    code = "MINT_NOT_ALLOWED"


class MintProtocolError(MintError):
    code = "MINT_PROTOCOL_ERROR"


class CanaryMismatch(MintProtocolError):
    code = "MINT_CANARY_MISMATCH"


class MintUnavailable(MintError):
    code = "MINT_UNAVAILABLE"


class MintRateLimited(MintUnavailable):
    code = "MINT_RATE_LIMITED"

    def __init__(self, message: str, *, mint_url: str, retry_after: float) -> None:
        super().__init__(message, mint_url=mint_url)
        self.retry_after = retry_after


class MintCircuitOpen(MintUnavailable):
    code = "MINT_CIRCUIT_OPEN"

    def __init__(self, message: str, *, mint_url: str, retry_after: float) -> None:
        super().__init__(message, mint_url=mint_url)
        self.retry_after = retry_after


class MintTransportError(MintUnavailable):
    code = "MINT_TRANSPORT_ERROR"


class MintDeadlineExceeded(MintUnavailable):
    code = "DEADLINE_EXCEEDED"


class SinkError(ProofReconError):
    code = "SINK_ERROR"


class SinkBackpressure(SinkError):
    """The sink cannot take more now; the caller pauses consumption and retries after a while."""

    code = "SINK_BACKPRESSURE"

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreError(ProofReconError):
    code = "STORE_ERROR"


class DeliveryError(ProofReconError):
    code = "DELIVERY_ERROR"

    def __init__(self, message: str, *, topic: str) -> None:
        super().__init__(f"{topic}: {message}")
        self.topic = topic


class DeliveryRefused(DeliveryError):
    code = "DELIVERY_REFUSED"


class DeliveryFailed(DeliveryError):
    code = "DELIVERY_FAILED"
