"""A real Nutshell mint in a subprocess, on a free 127.0.0.1 port, for tests that need their own.

Used for a mint that keeps melts PENDING (FakeWallet with FAKEWALLET_PAY_INVOICE_STATE=PENDING and
FAKEWALLET_PAYMENT_STATE=PENDING), and for "mint stopped / restarted" tests: `stop()` then
`start()` brings the same mint (same key, same database, same port) back.

    with MintServer(tmp_path, env=PENDING_ENV) as mint:
        ... mint.url ...
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType

import httpx

from devkit.wallet import mint_python

REPO = Path(__file__).resolve().parents[2]

PENDING_ENV: dict[str, str] = {
    "FAKEWALLET_PAY_INVOICE_STATE": "PENDING",
    "FAKEWALLET_PAYMENT_STATE": "PENDING",
}

# Deterministic and fast: no fees, FakeWallet pays and settles at once, no rate limiting (tests
# drive the limiter themselves, and localhost is exempt anyway).
BASE_ENV: dict[str, str] = {
    "MINT_BACKEND_BOLT11_SAT": "FakeWallet",
    "MINT_LISTEN_HOST": "127.0.0.1",
    "MINT_INPUT_FEE_PPK": "0",
    "FAKEWALLET_DELAY_INCOMING_PAYMENT": "0",
    "FAKEWALLET_DELAY_OUTGOING_PAYMENT": "0",
    "DEBUG": "false",
}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class MintServer:
    """Start/stop one Nutshell mint. `url` is stable across restarts."""

    def __init__(
        self,
        data_dir: Path,
        *,
        env: Mapping[str, str] | None = None,
        port: int | None = None,
        private_key: str = "proofrecon-test-mint-key",
        startup_timeout_s: float = 60.0,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = self.data_dir / "mint.log"
        self._env = dict(env or {})
        self._private_key = private_key
        self._startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> MintServer:
        if self.running:
            return self
        mint_bin = mint_python().parent / "mint"
        if not mint_bin.exists():
            raise RuntimeError(f"no Nutshell at {mint_bin}: run `make stack-up` once")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # Nutshell loads ./.env, else ~/.cashu/.env, over the environment: an empty one here
        # keeps a developer's own file from changing the mint under test.
        (self.data_dir / ".env").touch()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MINT_", "FAKEWALLET_"))}
        env.update(BASE_ENV)
        env.update(
            {
                "MINT_LISTEN_PORT": str(self.port),
                "MINT_PRIVATE_KEY": self._private_key,
                "MINT_DATABASE": str(self.data_dir / "db"),
                "CASHU_DIR": str(self.data_dir / "cashu"),
            }
        )
        env.update(self._env)
        log = self.log_path.open("ab")
        # Nutshell resolves some paths and reads a .env against its working directory.
        self._process = subprocess.Popen(
            [str(mint_bin)],
            cwd=self.data_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self._startup_timeout_s
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"the mint exited at startup; see {self.log_path}:\n{self._tail()}"
                )
            try:
                if httpx.get(f"{self.url}/v1/info", timeout=1.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"the mint did not answer within {self._startup_timeout_s} s")

    def stop(self, timeout_s: float = 15.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def restart(self) -> None:
        self.stop()
        self.start()

    def _tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> MintServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
