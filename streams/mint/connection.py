"""One NUT-17 WebSocket connection to one mint, carrying any number of proof-state subscriptions.

Mechanism only: connect, subscribe Ys, unsubscribe, keep the socket alive, read and route what
the mint sends. Which Ys go where, and what to do when something fails, is watch.py's policy.

- Every message we send (the connect included) first takes an allowance from the mint's shared
  MessageBudget (wspacing.py); requests wait for their response (`request_timeout_s`).
- A notification is delivered only if it parses strictly (nut17.py), names one of this
  connection's subscriptions, and carries a Y that subscription asked for; anything else is
  reported as rejected and never used.
- Keep-alive. Nutshell closes a socket that sent no message for MINT_WEBSOCKET_READ_TIMEOUT
  (600 s); WebSocket pings are answered below the application and do not count. So after
  `keepalive_s` without a message we send the cheapest well-formed request both Nutshell and
  CDK answer with OK and that leaves nothing behind: alternately, subscribe one Y this connection
  already watches under a dedicated keep-alive subId, and unsubscribe it. One message per period
  (it counts against the rate limit like any other), no new filter on the mint (Nutshell keys
  filters by Y: a Y it already holds takes no new slot; CDK gets one subscription, dropped again
  next period), no error in the mint's log, and the subscribe half brings that Y's current
  state as a bonus. An unsubscribe of an unknown subId would also be one message, but both mints
  answer it with an error; an empty filter list makes Nutshell run an `IN ()` query, which
  PostgreSQL rejects.
- aiohttp answers the mint's pings (CDK's newer releases ping and count the pong as traffic)
  and pings the mint every `ping_interval_s` to notice a dead peer.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import aiohttp

from streams.mint import nut17
from streams.mint.limiter import Clock
from streams.mint.wspacing import MessageBudget

log = logging.getLogger(__name__)

# A mint's frames are a few hundred bytes (a witness adds about a KiB); more is not a mint.
MAX_FRAME_BYTES = 256 * 1024
_CLOSE_TIMEOUT_S = 2.0
# Computed waits are floored: a remainder below the clock's resolution would wake a loop at
# "now" again and again without time moving on.
MIN_SLEEP_S = 0.01


class WsTransport(Protocol):
    """A WebSocket as this module needs it (the test seam: fakes implement this)."""

    async def send(self, text: str) -> None:
        """Send one text frame; raises ConnectionError if the socket is gone."""

    async def receive(self) -> str | bytes | None:
        """The next data frame, or None once the socket is closed."""

    async def close(self) -> None:
        """Close the socket (idempotent)."""


ConnectFactory = Callable[[str], Awaitable[WsTransport]]
"""`await connect(ws_url)` opens a socket, or raises (OSError, aiohttp.ClientError, ...)."""


class AiohttpTransport:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._ws = ws

    async def send(self, text: str) -> None:
        if self._ws.closed:
            raise ConnectionError("socket closed")
        await self._ws.send_str(text)

    async def receive(self) -> str | bytes | None:
        while True:
            msg = await self._ws.receive()
            if msg.type is aiohttp.WSMsgType.TEXT:
                return str(msg.data)
            if msg.type is aiohttp.WSMsgType.BINARY:
                return bytes(msg.data)
            if msg.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                continue  # autoping handles these
            return None  # CLOSE, CLOSING, CLOSED, ERROR

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._ws.close(), _CLOSE_TIMEOUT_S)


def aiohttp_connector(
    session: aiohttp.ClientSession,
    *,
    ping_interval_s: float = 30.0,
    connect_timeout_s: float = 10.0,
    headers: Mapping[str, str] | None = None,
) -> ConnectFactory:
    """A ConnectFactory over `session`; `headers` go with every handshake (e.g. a proxy's)."""

    async def connect(url: str) -> WsTransport:
        async with asyncio.timeout(connect_timeout_s):
            ws = await session.ws_connect(
                url,
                heartbeat=ping_interval_s,
                autoping=True,
                max_msg_size=MAX_FRAME_BYTES,
                timeout=aiohttp.ClientWSTimeout(ws_close=_CLOSE_TIMEOUT_S),
                headers=dict(headers or {}),
            )
        return AiohttpTransport(ws)

    return connect


# --- one connection ----------------------------------------------------------------------------


class WatchRequestError(Exception):
    """A request on a watch connection did not succeed."""


class ConnectionLost(WatchRequestError):
    """The socket is closed (or closed while we waited)."""


class RequestRefused(WatchRequestError):
    """The mint answered our request with an error (or refused a message without saying which)."""

    def __init__(self, code: int) -> None:
        super().__init__(f"refused with JSON-RPC error {code}")
        self.code = code


class MessageDropped(WatchRequestError):
    """The mint refused a message without saying which (Nutshell's rate limiter: id 0)."""


class RequestTimeout(WatchRequestError):
    """No answer within the request timeout; the connection is closed as broken."""


class ConnectionHooks(Protocol):
    """What a connection reports to its owner; called inline on the event loop, must not block."""

    def notified(self, conn: WatchConnection, note: nut17.Notification) -> None:
        """A valid notification for one of this connection's subscriptions."""

    def rejected(self, conn: WatchConnection, reason: str) -> None:
        """Something from the mint was not usable (malformed, unknown subscription, ...)."""

    def sent(self, conn: WatchConnection, kind: str) -> None:
        """A message left: connect, subscribe, unsubscribe or keepalive."""

    def refused(self, conn: WatchConnection) -> None:
        """An error naming no request of ours: the mint's rate limiter dropped a message."""

    def lost(self, conn: WatchConnection) -> None:
        """The socket closed without our asking (the mint went away, idle close, ...)."""


_sessions = itertools.count(1)
_background: set[asyncio.Task[None]] = set()  # cleanups nobody awaits must not be collected


class WatchConnection:
    """One socket. `session` numbers connection objects uniquely (the planner's handle); a
    closed connection is never reopened, its owner makes a new one."""

    def __init__(
        self,
        url: str,
        *,
        connect: ConnectFactory,
        budget: MessageBudget,
        hooks: ConnectionHooks,
        request_timeout_s: float,
        keepalive_s: float,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.url = url
        self.session = next(_sessions)
        self._connect = connect
        self._budget = budget
        self._hooks = hooks
        self._request_timeout_s = request_timeout_s
        self._keepalive_s = keepalive_s
        self._clock = clock or time.monotonic
        self._rng = rng or random.Random()
        # Acknowledged subscriptions (keep-alive excluded), and every Y ever subscribed here:
        # Nutshell never frees a filter slot on unsubscribe, so slots only grow until reconnect.
        self.subscriptions: dict[str, frozenset[str]] = {}
        self.slots_used: set[str] = set()
        self.full = False  # the mint refused a subscribe here: place nothing more on it
        self.last_sent = -float("inf")
        self.opened_at = -float("inf")
        self._routes: dict[str, frozenset[str]] = {}  # subIds notifications may name
        self._retired: set[str] = set()  # unsubscribed: late notifications are not errors
        self._pending: dict[int, asyncio.Future[nut17.Message]] = {}
        self._ids = itertools.count(1)  # Nutshell answers a dropped message with id 0
        self._transport: WsTransport | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._cleanup: asyncio.Task[None] | None = None
        self._state = "new"  # new | open | closed
        self._keepalive_sub = nut17.new_sub_id(self._rng)
        self._keepalive_on = False

    @property
    def keepalive_sub(self) -> str:
        return self._keepalive_sub

    @property
    def alive(self) -> bool:
        return self._state == "open"

    @property
    def watched(self) -> int:
        return sum(len(ys) for ys in self.subscriptions.values())

    async def open(self) -> None:
        """Connect (one message of the budget). Raises whatever the connect raised."""
        await self._budget.acquire()
        self._hooks.sent(self, "connect")
        self.last_sent = self._clock()
        self._transport = await self._connect(self.url)
        self._state = "open"
        self.opened_at = self._clock()
        self._tasks = [
            asyncio.create_task(self._read_loop()),
            asyncio.create_task(self._keepalive_loop()),
        ]

    async def subscribe(self, ys: Sequence[str]) -> str:
        """Subscribe `ys` (distinct, lowercase, at most the per-message limit) as one new
        subscription; returns its subId once the mint acknowledged it."""
        sub_id = nut17.new_sub_id(self._rng)
        filters = frozenset(ys)
        self._routes[sub_id] = filters  # its first notifications may precede the response
        self.slots_used.update(filters)
        try:
            await self._request(
                "subscribe", sub_id, lambda i: nut17.subscribe_request(i, sub_id, ys)
            )
        except BaseException:
            self._routes.pop(sub_id, None)
            raise
        self.subscriptions[sub_id] = filters
        return sub_id

    async def unsubscribe(self, sub_id: str) -> None:
        await self._request("unsubscribe", sub_id, lambda i: nut17.unsubscribe_request(i, sub_id))
        self.forget(sub_id)

    def forget(self, sub_id: str) -> None:
        """Drop `sub_id` from our records; its late notifications are ignored, not rejected."""
        self.subscriptions.pop(sub_id, None)
        self._routes.pop(sub_id, None)
        self._retired.add(sub_id)

    async def close(self) -> None:
        """Close the socket; the mint drops every subscription with it."""
        self._shut(ConnectionLost("closed"))
        if self._cleanup is not None:
            await self._cleanup

    def _shut(self, error: Exception) -> bool:
        """Stop using the socket now and clean up in the background; False if already done."""
        if self._state != "open":
            self._state = "closed"
            return False
        self._state = "closed"
        self._fail_pending(error)
        self._cleanup = asyncio.create_task(self._clean_up())
        _background.add(self._cleanup)
        self._cleanup.add_done_callback(_background.discard)
        return True

    async def _clean_up(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._transport is not None:
            await self._transport.close()

    # --- requests --------------------------------------------------------------------------

    async def _request(self, kind: str, sub_id: str, build: Callable[[int], str]) -> None:
        if not self.alive:
            raise ConnectionLost("not connected")
        await self._budget.acquire()
        if not self.alive or self._transport is None:
            raise ConnectionLost("closed while waiting to send")
        request_id = next(self._ids)
        future: asyncio.Future[nut17.Message] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            try:
                await self._transport.send(build(request_id))
            except Exception as exc:
                self._on_lost()
                raise ConnectionLost("send failed") from exc
            self.last_sent = self._clock()
            self._hooks.sent(self, kind)
            try:
                answer = await asyncio.wait_for(future, self._request_timeout_s)
            except TimeoutError:
                log.info("watch connection %s: no answer to a %s; closing it", self.url, kind)
                self._on_lost()
                raise RequestTimeout(kind) from None
        finally:
            self._pending.pop(request_id, None)
        self._check_answer(answer, sub_id)

    def _check_answer(self, answer: nut17.Message, sub_id: str) -> None:
        if isinstance(answer, nut17.ErrorResponse):
            raise RequestRefused(answer.code)
        if not isinstance(answer, nut17.Response) or answer.sub_id != sub_id:
            self._hooks.rejected(self, "response names another subscription")
            raise RequestRefused(0)

    def _fail_pending(self, error: Exception) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(error)

    # --- reading -----------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        assert self._transport is not None
        try:
            while (frame := await self._transport.receive()) is not None:
                self._dispatch(frame)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a broken socket ends the connection, never the process
            log.debug("watch connection %s: read failed: %r", self.url, exc)
        self._on_lost()

    def _on_lost(self) -> None:
        if self._shut(ConnectionLost("socket closed")):
            self._hooks.lost(self)

    def _dispatch(self, frame: str | bytes) -> None:
        if isinstance(frame, bytes):
            try:
                frame = frame.decode("utf-8")
            except UnicodeDecodeError:
                self._hooks.rejected(self, "binary frame that is not UTF-8")
                return
        message = nut17.parse_message(frame)
        if isinstance(message, nut17.Malformed):
            self._hooks.rejected(self, message.reason)
        elif isinstance(message, nut17.Notification):
            self._route(message)
        elif message.id is not None and message.id in self._pending:
            future = self._pending[message.id]
            if not future.done():
                future.set_result(message)
        elif isinstance(message, nut17.ErrorResponse):
            # Nutshell's rate limiter drops a message and answers with id 0: whichever request
            # it was, every request waiting here is retried later, after the budget's quiet.
            self._hooks.refused(self)
            self._fail_pending(MessageDropped(f"JSON-RPC error {message.code} without an id"))
        else:
            self._hooks.rejected(self, "response to no request of ours")

    def _route(self, note: nut17.Notification) -> None:
        filters = self._routes.get(note.sub_id)
        if filters is None:
            # The keep-alive subId comes and goes; late notifications of retired ones are
            # the mint finishing what it started, not errors.
            if note.sub_id not in self._retired and note.sub_id != self._keepalive_sub:
                self._hooks.rejected(self, "notification for an unknown subscription")
        elif note.y not in filters:
            self._hooks.rejected(self, "notification for a Y its subscription did not ask for")
        else:
            self._hooks.notified(self, note)

    # --- keep-alive --------------------------------------------------------------------------

    async def _keepalive_loop(self) -> None:
        while self.alive:
            idle = self._clock() - self.last_sent
            if idle < self._keepalive_s:
                await asyncio.sleep(max(self._keepalive_s - idle, MIN_SLEEP_S))
                continue
            try:
                await self._keepalive_once()
            except (ConnectionLost, RequestTimeout):
                return  # the connection is gone (a timeout closes it)
            except WatchRequestError:
                self._hooks.rejected(self, "keep-alive refused")

    async def _keepalive_once(self) -> None:
        """One message: unsubscribe the keep-alive subscription, or subscribe it to a Y this
        connection already watches (so it takes no new filter slot at the mint)."""
        sub_id = self._keepalive_sub
        if self._keepalive_on:
            self._keepalive_on = False
            await self._request("keepalive", sub_id, lambda i: nut17.unsubscribe_request(i, sub_id))
            self._routes.pop(sub_id, None)
            return
        y = next((y for ys in self.subscriptions.values() for y in ys), None)
        if y is None:
            # Nothing to keep alive: the owner closes empty connections. Look again later.
            self.last_sent = self._clock()
            return
        self._routes[sub_id] = frozenset((y,))
        try:
            await self._request(
                "keepalive", sub_id, lambda i: nut17.subscribe_request(i, sub_id, [y])
            )
        except BaseException:
            self._routes.pop(sub_id, None)
            raise
        self._keepalive_on = True
