"""An endpoint that is not there is reported before the run, not after minutes of retries."""

from __future__ import annotations

import socket

import pytest

from pytest_bsa.engine.preflight import unreachable


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the block ends


def test_open_port_is_reachable() -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert unreachable("model", f"http://127.0.0.1:{port}/v1") is None


def test_closed_port_names_endpoint_reason_and_option() -> None:
    port = _closed_port()
    problem = unreachable("judge", f"http://127.0.0.1:{port}/v1")
    assert problem == (
        f"the judge endpoint http://127.0.0.1:{port} is unreachable: connection refused "
        "(is the server running on that port?); check --bsa-judge-api-base"
    )


def test_bad_port_is_named() -> None:
    assert "invalid port" in (unreachable("model", "http://127.0.0.1:99999999/v1") or "")


def test_run_against_a_dead_endpoint_stops_with_usage_error(pytester: pytest.Pytester) -> None:
    port = _closed_port()
    result = pytester.runpytest_subprocess(
        "--bsa-model=simulated",
        "--bsa-judge=openai/j",
        f"--bsa-judge-api-base=http://127.0.0.1:{port}/v1",
        "--bsa-dataset=sample",
        "--bsa-limit=3",
        "--bsa-cache=off",
        "--bsa-gate=report",
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*the judge endpoint http://127.0.0.1:{port} is unreachable*"])
