"""The domain's vocabulary: every enumerated value that crosses a topic, a table or an API.

String enums so that a value serialises as itself in JSON, ClickHouse and logs. The names of the
five discrepancy types the seed defined are the seed's; the wire values equal the names.
"""

from __future__ import annotations

from enum import StrEnum


class DbStatus(StrEnum):
    """A proof's status as the wallet's database records it."""

    UNSPENT = "unspent"
    PENDING = "pending"
    SPENT = "spent"


class TokenStatus(StrEnum):
    """A token-status event's status: a DB status, or the token's removal from the wallet DB."""

    UNSPENT = "unspent"
    PENDING = "pending"
    SPENT = "spent"
    DELETED = "deleted"


class MintState(StrEnum):
    """A proof's state at the mint (NUT-07). SPENT is final; PENDING can go either way."""

    UNSPENT = "UNSPENT"
    PENDING = "PENDING"
    SPENT = "SPENT"


class Severity(StrEnum):
    HIGH = "HIGH"
    MEDIUM = "MEDIUM"
    LOW = "LOW"


class DiscrepancyType(StrEnum):
    DB_UNSPENT_MINT_SPENT = "DB_UNSPENT_MINT_SPENT"
    DB_SPENT_MINT_UNSPENT = "DB_SPENT_MINT_UNSPENT"
    DB_PENDING_MINT_SPENT = "DB_PENDING_MINT_SPENT"
    PROOF_NOT_IN_DB = "PROOF_NOT_IN_DB"
    DB_UNSPENT_MINT_PENDING = "DB_UNSPENT_MINT_PENDING"
    DB_PENDING_MINT_UNSPENT = "DB_PENDING_MINT_UNSPENT"
    DB_SPENT_MINT_PENDING = "DB_SPENT_MINT_PENDING"


class Action(StrEnum):
    """What reconciliation does about a discrepancy."""

    MARK_SPENT = "MARK_SPENT"
    INVESTIGATE = "INVESTIGATE"
    AUDIT = "AUDIT"
    MONITOR = "MONITOR"


class Verdict(StrEnum):
    CLEARED = "CLEARED"
    CLEARED_AFTER_RECONCILIATION = "CLEARED_AFTER_RECONCILIATION"
    BLOCKED = "BLOCKED"


class BlockCode(StrEnum):
    """Why a melt is BLOCKED. The first four are the seed's; the others name blocking reasons of
    their own, so a wallet can tell the user what happened (and never confuse them with HIGH)."""

    HIGH_SEVERITY_DISCREPANCIES = "HIGH_SEVERITY_DISCREPANCIES"
    MINT_UNAVAILABLE = "MINT_UNAVAILABLE"
    INVALID_REQUEST = "INVALID_REQUEST"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    # The mint reports a proof SPENT (resp. PENDING): it can never be melted, whatever the DB says.
    PROOF_SPENT_AT_MINT = "PROOF_SPENT_AT_MINT"
    PROOF_PENDING_AT_MINT = "PROOF_PENDING_AT_MINT"
    # A proof the ledger holds at another mint than the request names: that mint cannot judge it.
    MINT_MISMATCH = "MINT_MISMATCH"
    # A discrepancy the policy corrects automatically, but no correction could be issued for it.
    UNRESOLVED_DISCREPANCIES = "UNRESOLVED_DISCREPANCIES"


class Source(StrEnum):
    """Which path detected a discrepancy or checked a proof."""

    PREFLIGHT = "preflight"
    SWEEP = "sweep"
    SUBSCRIPTION = "subscription"
    VALIDATE = "validate"


class Truth(StrEnum):
    """Where a verdict's mint states came from."""

    CHECKSTATE = "checkstate"  # the mint asked for this request (NUT-07), or its SPENT cache
    LIVE = "live"  # the live watch's fresh state of every proof (NUT-17)
    MIXED = "checkstate+live"  # some of each


class Lifecycle(StrEnum):
    OPENED = "OPENED"
    RESOLVED = "RESOLVED"


class AlertKind(StrEnum):
    HIGH_SEVERITY = "HIGH_SEVERITY"
    RATE_THRESHOLD = "RATE_THRESHOLD"
    ANOMALY = "ANOMALY"
    MINT_UNAVAILABLE = "MINT_UNAVAILABLE"


class ErrorKind(StrEnum):
    """Why a message went to the dead-letter topic."""

    DECODE_ERROR = "DECODE_ERROR"
    VALIDATION_ERROR = "VALIDATION_ERROR"
    TOO_LARGE = "TOO_LARGE"
    PROCESSING_ERROR = "PROCESSING_ERROR"
