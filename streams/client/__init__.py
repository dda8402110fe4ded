"""Wallet-side clients in Python: ask for a melt preflight and await its verdict
(`PreflightClient`), publish token statuses (`TokenStatusPublisher`). The Node.js package in
clients/typescript is the same for JavaScript backends."""

from streams.client.preflight import PreflightClient, answers
from streams.client.publisher import TokenStatusPublisher, token_status_event

__all__ = ["PreflightClient", "TokenStatusPublisher", "answers", "token_status_event"]
