"""An in-memory NUT-17 mint for unit tests: a ConnectFactory whose sockets behave like a mint's.

Defaults follow Nutshell 0.20.2 (cashu/mint/events/client.py, limit.py): the current state of
every filter on subscribe, at most `per_connection` filters per connection counted over the
connection's life (never freed on unsubscribe), at most `per_message` per subscribe, an elastic
per-IP limiter on every connect and message (refused messages answered with id 0 and dropped),
and an idle close. `cdk=True` gives CDK 0.18's differences: no initial notification for a Y it
never saw or that is UNSPENT. Faults a real mint cannot be made to show on cue: `drop_notes`
(silently lost notifications), `down` (refuse connects), `kill()`, `fail_next_subscribes`.

All time comes from the running loop, so it works under tests/support/virtual_time.py.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

from streams.core.domain import MintState


@dataclass
class Sent:
    at: float
    kind: str  # connect | subscribe | unsubscribe | other
    filters: int = 0
    refused: bool = False


@dataclass
class FakeSocket:
    mint: FakeWsMint
    queue: asyncio.Queue[str | None] = field(default_factory=asyncio.Queue)
    filters: dict[str, list[str]] = field(default_factory=dict)
    subs: dict[str, list[str]] = field(default_factory=dict)
    closed: bool = False
    last_received: float = 0.0
    idle_task: asyncio.Task[None] | None = None

    async def send(self, text: str) -> None:
        if self.closed:
            raise ConnectionError("closed")
        self.mint.handle(self, text)

    async def receive(self) -> str | None:
        if self.closed and self.queue.empty():
            return None
        return await self.queue.get()

    async def close(self) -> None:
        self.shut()

    def shut(self) -> None:
        if not self.closed:
            self.closed = True
            self.queue.put_nowait(None)
            if self.idle_task is not None and self.idle_task is not asyncio.current_task():
                self.idle_task.cancel()
            if self in self.mint.sockets:
                self.mint.sockets.remove(self)

    def push(self, obj: dict[str, Any]) -> None:
        if not self.closed:
            self.queue.put_nowait(json.dumps(obj))


class FakeWsMint:
    def __init__(
        self,
        *,
        cdk: bool = False,
        per_connection: int = 1000,
        per_message: int = 1000,
        rate_limit: int | None = 20,
        idle_timeout_s: float | None = 600.0,
    ) -> None:
        self.cdk = cdk
        self.per_connection = per_connection
        self.per_message = per_message
        self.rate_limit = rate_limit
        self.idle_timeout_s = idle_timeout_s
        self.states: dict[str, MintState] = {}
        self.sockets: list[FakeSocket] = []
        self.sent: list[Sent] = []
        self.connects = 0
        self.connect_times: list[float] = []
        self.down = False
        self.drop_notes = False
        self.notes_before_response = False
        self.fail_next_subscribes = 0
        self._count = 0
        self._expiry = -1.0

    # --- the ConnectFactory -------------------------------------------------------------------

    async def connect(self, url: str) -> FakeSocket:
        now = asyncio.get_running_loop().time()
        self.connect_times.append(now)
        if self.down:
            raise ConnectionRefusedError("mint down")
        if not self._hit(now, "connect", 0):
            raise ConnectionError("handshake refused: rate limited")
        self.connects += 1
        sock = FakeSocket(self, last_received=now)
        self.sockets.append(sock)
        if self.idle_timeout_s is not None:
            sock.idle_task = asyncio.create_task(self._idle_watch(sock))
        return sock

    # --- what tests do ----------------------------------------------------------------------

    def set_state(self, y: str, state: MintState) -> None:
        self.states[y] = state
        for sock in list(self.sockets):
            for sub_id in sock.filters.get(y, []):
                if sub_id in sock.subs and not self.drop_notes:
                    sock.push(_note(sub_id, y, state))

    def kill(self) -> None:
        for sock in list(self.sockets):
            sock.shut()

    @property
    def refused(self) -> int:
        return sum(1 for s in self.sent if s.refused)

    def subscribed(self) -> set[str]:
        return {y for sock in self.sockets for ys in sock.subs.values() for y in ys}

    # --- the mint's side ----------------------------------------------------------------------

    def handle(self, sock: FakeSocket, text: str) -> None:
        now = asyncio.get_running_loop().time()
        sock.last_received = now
        req = json.loads(text)
        method, params, rid = req.get("method"), req.get("params", {}), req.get("id")
        filters = len(params.get("filters", []))
        if not self._hit(now, str(method), filters):
            sock.push({"jsonrpc": "2.0", "error": {"code": -32000, "message": "rate"}, "id": 0})
            return
        if method == "subscribe":
            self._subscribe(sock, rid, params)
        elif method == "unsubscribe":
            self._unsubscribe(sock, rid, params["subId"])

    def _subscribe(self, sock: FakeSocket, rid: int, params: dict[str, Any]) -> None:
        sub_id, ys = params["subId"], list(params["filters"])
        too_many = len(sock.filters) >= self.per_connection or len(ys) > self.per_message
        if too_many or self.fail_next_subscribes > 0:
            self.fail_next_subscribes = max(0, self.fail_next_subscribes - 1)
            sock.push(_error(rid, -32603))
            return
        for y in ys:
            sock.filters.setdefault(y, []).append(sub_id)
        sock.subs[sub_id] = ys
        initial = [
            _note(sub_id, y, self.states.get(y, MintState.UNSPENT))
            for y in ys
            if not self.cdk or self.states.get(y, MintState.UNSPENT) is not MintState.UNSPENT
        ]
        response = {"jsonrpc": "2.0", "result": {"status": "OK", "subId": sub_id}, "id": rid}
        if not self.notes_before_response:
            sock.push(response)
        for note in initial:
            if not self.drop_notes:
                sock.push(note)
        if self.notes_before_response:
            sock.push(response)

    def _unsubscribe(self, sock: FakeSocket, rid: int, sub_id: str) -> None:
        if sock.subs.pop(sub_id, None) is None:
            sock.push(_error(rid, -32603))
            return
        for subs in sock.filters.values():  # Nutshell keeps the filter keys: slots stay used
            while sub_id in subs:
                subs.remove(sub_id)
        sock.push({"jsonrpc": "2.0", "result": {"status": "OK", "subId": sub_id}, "id": rid})

    def _hit(self, now: float, kind: str, filters: int) -> bool:
        """limits' fixed-window-elastic-expiry: every hit counts and pushes the expiry."""
        if now >= self._expiry:
            self._count = 0
        self._count += 1
        self._expiry = now + 60.0
        refused = self.rate_limit is not None and self._count > self.rate_limit
        self.sent.append(Sent(now, kind, filters, refused))
        return not refused

    async def _idle_watch(self, sock: FakeSocket) -> None:
        assert self.idle_timeout_s is not None
        loop = asyncio.get_running_loop()
        while not sock.closed:
            wait = sock.last_received + self.idle_timeout_s - loop.time()
            if wait <= 0:
                sock.shut()
                return
            await asyncio.sleep(max(wait, 0.01))


def _note(sub_id: str, y: str, state: MintState) -> dict[str, Any]:
    payload = {"Y": y, "state": state.value, "witness": None}
    return {
        "jsonrpc": "2.0",
        "method": "subscribe",
        "params": {"subId": sub_id, "payload": payload},
    }


def _error(rid: int, code: int) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": "refused"}, "id": rid}
