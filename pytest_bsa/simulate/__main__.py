"""``bsa-simulate`` / ``python -m pytest_bsa.simulate``: serve the simulator until Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import sys
from collections.abc import Sequence

from pytest_bsa.simulate.script import DEMO_SCRIPT, Script, ScriptError

NO_REMOTE = (
    "bsa-simulate: refusing to listen on {host}: the simulator has no authentication and is "
    "meant for local tests only. Use a loopback address (127.0.0.1, ::1, localhost), or pass "
    "--allow-remote if you really mean to expose it."
)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bsa-simulate",
        description="Serve a simulated OpenAI-compatible reasoning model and judge for pytest-bsa.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port, 0 for any (default 8000)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--script", metavar="FILE", help="YAML or JSON script (default: built-in)")
    source.add_argument(
        "--demo", action="store_true", help="the demo profile: mostly safe, a few retryable faults"
    )
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow a non-loopback --host (default: refuse)"
    )
    return parser.parse_args(argv)


async def _serve(script: Script, host: str, port: int) -> None:
    from pytest_bsa.simulate.server import Server, bind

    sock = bind(host, port)
    server = Server(script, sock)
    await server.start()
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(f"bsa-simulate listening on http://{shown}:{bound_port}/v1", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await server.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.allow_remote and not is_loopback(args.host):
        print(NO_REMOTE.format(host=args.host), file=sys.stderr)
        return 2
    if args.script:
        try:
            script = Script.load(args.script)
        except ScriptError as exc:
            print(f"bsa-simulate: {exc}", file=sys.stderr)
            return 2
    else:
        script = DEMO_SCRIPT if args.demo else Script()
    try:
        asyncio.run(_serve(script, args.host, args.port))
    except OSError as exc:
        print(f"bsa-simulate: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bsa-simulate: stopped", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
