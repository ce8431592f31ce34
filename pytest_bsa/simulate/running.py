"""Run the simulator in a daemon thread with its own event loop (for tests and the demo)."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from pytest_bsa.simulate.script import Script


class RunningSimulator:
    """A simulator listening on 127.0.0.1 in a background thread; also a context manager."""

    def __init__(self, script: Script, host: str, port: int) -> None:
        from pytest_bsa.simulate.server import Server, bind

        self.script = script
        sock = bind(host, port)
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.base_url = f"http://{shown}:{bound_port}/v1"
        self.port: int = bound_port
        self._loop = asyncio.new_event_loop()
        self._server = Server(script, sock)
        self._stopped = False
        ready: threading.Event = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(
            target=self._run, args=(ready, failure), name="bsa-simulate", daemon=True
        )
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            raise failure[0]

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._server.start())
        except BaseException as exc:
            failure.append(exc)
            ready.set()
            self._loop.close()
            return
        ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._server.close())
        self._loop.close()

    def stats(self) -> dict[str, Any]:
        """The same JSON as ``GET /stats``."""
        return self._server.state.snapshot()

    def requests_seen(self) -> list[dict[str, Any]]:
        """Method, path and headers of every request received (any route), oldest first."""
        return self._server.state.requests_seen()

    def reset_stats(self) -> None:
        """Zero the counters and the fault attempt counts."""
        self._server.state.reset()

    def stop(self) -> None:
        """Stop serving (releases hanging requests); safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> RunningSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_simulator(
    script: Script | None = None, *, host: str = "127.0.0.1", port: int = 0
) -> RunningSimulator:
    """Start a simulator in a daemon thread; returns once it is listening."""
    return RunningSimulator(script if script is not None else Script(), host, port)
