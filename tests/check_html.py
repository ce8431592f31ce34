#!/usr/bin/env python3
"""Open a pytest-bsa HTML report in headless Chromium, fail on console errors, save a screenshot.

Usage::

    python tests/check_html.py report.html [--screenshot shot.png] [--chromium PATH]
                                 [--full-page] [--scroll SELECTOR] [--keep-open]
                                 [--width 1400] [--height 1000] [--timeout 60]

What it does: starts Chromium headless (no sandbox, no GPU, no background networking, a
throw-away profile) with the DevTools protocol on a loopback port, loads the file, and
collects every uncaught exception, ``console.error``/``console.assert`` call, browser log entry
of level error (CSP violations, failed loads) and JavaScript dialog (``alert`` from injected
markup). It then exercises the page: checks that the report's script marked it ready, opens
the first instance row (its samples must render), types a filter that matches nothing (the
counter must say "showing 0"), clears it, tries each select filter (the rows shown must be
the instances the data says match), closes the row again (unless ``--keep-open``),
scrolls to the top (or to the ``--scroll`` element) and saves a screenshot of the viewport
(the whole page with ``--full-page``).

Exit status: 0 when the page loaded with no error and every interaction worked; 1 otherwise
(each problem printed on stderr); 2 when Chromium is missing or does not start. Needs aiohttp
(a pytest-bsa dependency) and a Chromium build (``apt-get install chromium`` on Debian).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--no-default-browser-check",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)

# Runs in the page after load; returns what the checks need. ``ready`` is set by the report.
PROBE = """
(async () => {
  const out = {};
  const frame = () => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 0)));
  const root = document.documentElement;
  out.ready = root.getAttribute("data-bsa-ready");
  const rows = document.querySelectorAll("#bsa-rows tr.row");
  out.rows = rows.length;
  out.svgs = document.querySelectorAll("svg.chart").length;
  if (rows.length) {
    const t0 = performance.now();
    rows[0].click();
    await frame();
    out.expand_ms = performance.now() - t0;
    const detail = rows[0].nextElementSibling;
    out.detail_samples = detail && detail.classList.contains("detail")
      ? detail.querySelectorAll(".sample").length : 0;
    const text = document.getElementById("f-text");
    text.value = "no instance matches this filter 0x0x0";
    text.dispatchEvent(new Event("input"));
    await frame();
    out.counter_empty = document.getElementById("f-count").textContent;
    text.value = "";
    text.dispatchEvent(new Event("input"));
    await frame();
    out.counter_all = document.getElementById("f-count").textContent;
    const data = JSON.parse(document.getElementById("bsa-data").textContent).instances;
    const has = {
      scenario: (it, v) => it.scenario === v,
      category: (it, v) => it.categories.includes(v),
      status: (it, v) => it.status === v,
    };
    out.selects = {};
    for (const name of Object.keys(has)) {
      const select = document.getElementById("f-" + name);
      const option = [...select.options].find((o) => o.value);
      if (!option) { continue; }
      select.value = option.value;
      select.dispatchEvent(new Event("change"));
      await frame();
      const visible = [...rows].filter((r) => !r.hidden).length;
      const expected = data.filter((it) => has[name](it, option.value)).length;
      out.selects[name] = [visible, expected];
      select.value = "";
      select.dispatchEvent(new Event("change"));
      await frame();
    }
    if (!KEEP_OPEN) { rows[0].click(); }
    await frame();
  }
  const nav = performance.getEntriesByType("navigation")[0];
  out.load_ms = nav ? nav.loadEventEnd : null;
  const target = SCROLL ? document.querySelector(SCROLL) : null;
  if (target) { target.scrollIntoView(); } else { window.scrollTo(0, 0); }
  await frame();
  return out;
})()
"""


def find_browser(given: str | None) -> str | None:
    if given:
        return shutil.which(given) or (given if Path(given).exists() else None)
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def wait_for_port(profile: Path, proc: subprocess.Popen[bytes], timeout: float) -> int:
    """Chromium writes its DevTools port to ``<profile>/DevToolsActivePort``."""
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with status {proc.returncode} before starting")
        if marker.exists():
            first = marker.read_text().splitlines()[:1]
            if first and first[0].strip().isdigit():
                return int(first[0])
        time.sleep(0.05)
    raise RuntimeError(f"chromium did not open a DevTools port within {timeout:.0f} s")


class Page:
    """A minimal DevTools protocol client for one page target."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.events: list[dict[str, Any]] = []
        self.loaded = asyncio.Event()

    async def pump(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                break
            data = json.loads(msg.data)
            if "id" in data and data["id"] in self.pending:
                self.pending.pop(data["id"]).set_result(data)
            elif "method" in data:
                self.events.append(data)
                if data["method"] == "Page.loadEventFired":
                    self.loaded.set()
                if data["method"] == "Page.javascriptDialogOpening":
                    await self.ws.send_json(
                        {
                            "id": next(self.ids),
                            "method": "Page.handleJavaScriptDialog",
                            "params": {"accept": True},
                        }
                    )

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        ident = next(self.ids)
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[ident] = future
        await self.ws.send_json({"id": ident, "method": method, "params": params})
        reply = await future
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error'].get('message')}")
        return reply.get("result", {})

    def problems(self) -> list[str]:
        out = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                text = details.get("exception", {}).get("description") or details.get("text")
                out.append(f"uncaught exception: {text} (line {details.get('lineNumber')})")
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                args = " ".join(
                    str(a.get("value", a.get("description", ""))) for a in params["args"]
                )
                out.append(f"console.{params['type']}: {args}")
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                out.append(f"browser log ({entry.get('source')}): {entry.get('text')}")
            elif method == "Page.javascriptDialogOpening":
                out.append(f"a JavaScript {params.get('type')} opened: {params.get('message')!r}")
        return out


async def inspect(
    port: int, url: str, args: argparse.Namespace
) -> tuple[dict[str, Any], list[str]]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
            targets = await resp.json(content_type=None)
        target = next(t for t in targets if t.get("type") == "page")
        async with session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            page = Page(ws)
            pump = asyncio.create_task(page.pump())
            for domain in ("Page", "Runtime", "Log"):
                await page.call(f"{domain}.enable")
            await page.call(
                "Emulation.setDeviceMetricsOverride",
                width=args.width,
                height=args.height,
                deviceScaleFactor=1,
                mobile=False,
            )
            started = time.monotonic()
            await page.call("Page.navigate", url=url)
            await asyncio.wait_for(page.loaded.wait(), args.timeout)
            facts: dict[str, Any] = {"navigate_to_load_s": round(time.monotonic() - started, 3)}
            probe = PROBE.replace("KEEP_OPEN", json.dumps(args.keep_open)).replace(
                "SCROLL", json.dumps(args.scroll or "")
            )
            result = await page.call(
                "Runtime.evaluate", expression=probe, awaitPromise=True, returnByValue=True
            )
            if "exceptionDetails" in result:
                page.events.append({"method": "Runtime.exceptionThrown", "params": result})
            facts.update(result.get("result", {}).get("value") or {})
            if args.screenshot:
                shot = await page.call(
                    "Page.captureScreenshot", format="png", captureBeyondViewport=args.full_page
                )
                args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                args.screenshot.write_bytes(base64.b64decode(shot["data"]))
            await asyncio.sleep(0.1)  # let late console events arrive
            pump.cancel()
            return facts, page.problems()


def check(facts: dict[str, Any]) -> list[str]:
    """What the page must show once its script ran."""
    out = []
    rows = facts.get("rows", 0)
    if facts.get("ready") != str(rows):
        out.append(f"the report's script did not finish (ready marker {facts.get('ready')!r})")
    if not facts.get("svgs"):
        out.append("no chart was drawn")
    if rows:
        if not facts.get("detail_samples"):
            out.append("opening the first instance showed no sample")
        if not str(facts.get("counter_empty", "")).startswith("showing 0 of"):
            out.append(f"a filter matching nothing left {facts.get('counter_empty')!r}")
        if facts.get("counter_all") != f"showing {rows} of {rows}":
            out.append(f"clearing the filter left {facts.get('counter_all')!r}")
        for name, (visible, expected) in (facts.get("selects") or {}).items():
            if visible != expected:
                out.append(f"the {name} filter showed {visible} rows, expected {expected}")
    return out


def stop(proc: subprocess.Popen[bytes]) -> None:
    """End the browser and its helper processes (the session this script started for it)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            continue
        time.sleep(0.2)  # helpers leave after the main process; give them a moment
        return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("html", type=Path, help="the HTML report to open")
    parser.add_argument("--screenshot", type=Path, help="where to save a PNG of the viewport")
    parser.add_argument(
        "--chromium", help=f"browser binary (default: first of {', '.join(BROWSERS)})"
    )
    parser.add_argument("--full-page", action="store_true", help="screenshot the whole page")
    parser.add_argument("--scroll", help="CSS selector to scroll into view before the screenshot")
    parser.add_argument(
        "--keep-open", action="store_true", help="leave the first instance open in the screenshot"
    )
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1000)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds (default 60)")
    args = parser.parse_args(argv)
    browser = find_browser(args.chromium)
    if browser is None:
        print(
            "check_html: no Chromium found; install it (apt-get install chromium)", file=sys.stderr
        )
        return 2
    if not args.html.is_file():
        print(f"check_html: no such file {str(args.html)!r}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="bsa-chromium-", ignore_cleanup_errors=True) as tmp:
        profile = Path(tmp)
        command = [
            browser,
            *FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={args.width},{args.height}",
            "about:blank",
        ]
        proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        try:
            port = wait_for_port(profile, proc, args.timeout)
            facts, problems = asyncio.run(inspect(port, args.html.resolve().as_uri(), args))
        except (RuntimeError, OSError, asyncio.TimeoutError, aiohttp.ClientError) as exc:
            print(f"check_html: {exc or type(exc).__name__}", file=sys.stderr)
            return 2
        finally:
            stop(proc)
    problems += check(facts)
    size = args.html.stat().st_size
    print(f"check_html: {args.html} ({size:,} bytes): " + json.dumps(facts, sort_keys=True))
    if args.screenshot:
        print(f"check_html: screenshot {args.screenshot}")
    for problem in problems:
        print(f"check_html: ERROR {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
