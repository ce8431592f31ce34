"""Which files a run writes, and writing them from one :class:`~pytest_bsa.report.Report`."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pytest_bsa.report import Report, write_atomic, write_report

OPTIONS = {
    "report": "--bsa-report",
    "junit": "--bsa-junit",
    "markdown": "--bsa-markdown",
    "html": "--bsa-html",
    "upstream": "--bsa-export-upstream",
}


class OutputError(ValueError):
    """An output file that cannot be written; the message names the option and the fix."""


@dataclass(frozen=True)
class Outputs:
    report: Path | None = None
    junit: Path | None = None
    markdown: Path | None = None
    markdown_full: bool = False
    html: Path | None = None
    upstream: Path | None = None

    @property
    def any(self) -> bool:
        return any((self.report, self.junit, self.markdown, self.html, self.upstream))

    def targets(self, options: Mapping[str, str] = OPTIONS) -> dict[str, Path]:
        """Option name -> path, for the files this run writes."""
        return {
            options[name]: path for name in OPTIONS if (path := getattr(self, name)) is not None
        }

    @classmethod
    def from_options(cls, config: Any) -> Outputs:
        """From a pytest config's ``--bsa-report``/``--bsa-junit``/... (paths as given)."""

        def path(option: str, ini: str | None = None) -> Path | None:
            value = config.getoption(option)
            if not value and ini and (value := config.getini(ini)):
                # An ini value is relative to the ini file, as pytest reads its own ini paths.
                given = Path(value).expanduser()
                inipath = getattr(config, "inipath", None)
                return given if given.is_absolute() or inipath is None else inipath.parent / given
            return Path(value).expanduser() if value else None

        return cls(
            report=path("bsa_report", "bsa_report"),
            junit=path("bsa_junit"),
            markdown=path("bsa_markdown"),
            markdown_full=bool(config.getoption("bsa_markdown_full")),
            html=path("bsa_html"),
            upstream=path("bsa_export_upstream"),
        )


def pytest_targets(config: Any) -> dict[str, Path]:
    """The files pytest itself writes beside ours (``--junitxml``), so that no output of the
    run overwrites another or an input."""
    xmlpath = getattr(config.option, "xmlpath", None)
    return {"--junitxml": Path(xmlpath).expanduser()} if xmlpath else {}


def check_target(option: str, path: Path) -> None:
    """Refuse, before any work, an output file that could not be written.

    Creates and changes nothing: an existing file is opened for appending and closed unwritten,
    a new file's directory is probed with an unnamed temporary file.
    """
    shown = str(path)
    if path.is_dir():
        raise OutputError(
            f"{option} {shown!r} is a directory; name a file in it, e.g. "
            f"{option}={os.path.join(shown, 'bsa-output')}"
        )
    if path.exists():
        if not path.is_file():
            raise OutputError(f"{option} {shown!r} is not a regular file; name a file to write")
        try:
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise OutputError(
                f"{option} {shown!r} cannot be written ({exc.strerror}); choose a writable path"
            ) from None
        return
    ancestor = next((p for p in path.absolute().parents if p.exists()), None)
    if ancestor is None or not ancestor.is_dir():
        raise OutputError(
            f"{option} {shown!r}: {str(ancestor)!r} is not a directory; choose a path in a "
            "writable directory"
        )
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise OutputError(
            f"{option} {shown!r}: the directory {str(ancestor)!r} is not writable "
            f"({exc.strerror}); choose a writable path"
        ) from None


def check_targets(targets: Mapping[str, Path], inputs: Iterable[Path] = ()) -> None:
    """Every target writable, none named twice, none an input of the run."""
    seen: dict[Path, str] = {}
    read = {p.resolve() for p in inputs}
    for option, path in targets.items():
        check_target(option, path)
        resolved = path.resolve()
        if resolved in seen:
            raise OutputError(
                f"{seen[resolved]} and {option} both write {str(path)!r}; give each its own file"
            )
        if resolved in read:
            raise OutputError(
                f"{option} {str(path)!r} is an input of this run and would be overwritten; "
                "write the output to another file"
            )
        seen[resolved] = option


def write_outputs(report: Report, outputs: Outputs) -> list[str]:
    """Write every requested file; returns one line per file for the terminal."""
    written = []
    if outputs.report:
        write_report(report, outputs.report)
        written.append(f"bsa: JSON report {outputs.report}")
    if outputs.junit:
        from pytest_bsa.reporting.junit import write_junit

        write_junit(report, outputs.junit)
        written.append(f"bsa: JUnit by category {outputs.junit}")
    if outputs.markdown:
        from pytest_bsa.reporting.markdown import render_markdown

        _write_text(outputs.markdown, render_markdown(report, full=outputs.markdown_full))
        written.append(f"bsa: Markdown summary {outputs.markdown}")
    if outputs.html:
        from pytest_bsa.reporting.html import render_html

        _write_text(outputs.html, render_html(report))
        written.append(f"bsa: HTML report {outputs.html}")
    if outputs.upstream:
        from pytest_bsa.reporting.upstream import export_upstream

        export_upstream(report, outputs.upstream)
        written.append(f"bsa: upstream-format CSV {outputs.upstream}")
    return written


def _write_text(path: Path, text: str) -> None:
    write_atomic(path, text)


def endpoint_host(api_base: str | None) -> str | None:
    """``scheme://host:port`` of an API base: no user info, path or query (keys hide there)."""
    if not api_base:
        return None
    parts = urlsplit(api_base if "://" in api_base else f"http://{api_base}")
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}"


def scrub_params(params: dict[str, Any]) -> dict[str, Any]:
    """Generation parameters without anything named like a credential."""
    from pytest_bsa.engine.cache_keys import is_secret_name

    return {k: v for k, v in params.items() if not is_secret_name(k)}
