"""Run a composite action's steps the way the Actions runner does, on this machine.

Only what ``action.yml`` uses is understood, and anything else raises (so the action stays
within what this simulation checks):

- ``${{ inputs.X }}``, ``${{ steps.ID.outputs.X }}``, ``${{ github.X }}`` in ``env:``/``with:``
  values and input defaults; ``if:`` conditions made of ``always()``, ``success()`` and
  ``A == 'v'`` / ``A != 'v'`` terms joined by ``&&``;
- ``run:`` steps with ``shell: bash``, started as ``bash --noprofile --norc -eo pipefail FILE``
  with a fresh ``$GITHUB_OUTPUT`` and ``$GITHUB_STEP_SUMMARY`` per step (read back after it);
- ``uses:`` steps through handlers the test supplies (setup-python, cache, upload-artifact).

A failed step fails the action; later steps run only when their condition has ``always()``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

UsesHandler = Callable[[dict[str, str], "ActionRun"], dict[str, str]]
_EXPR = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_TERM = re.compile(r"^(?P<left>[\w.-]+)\s*(?P<op>==|!=)\s*'(?P<right>[^']*)'$")


class StepFailed(Exception):
    """A ``uses:`` handler's way to fail its step."""


@dataclass
class StepResult:
    name: str
    ran: bool
    ok: bool = True
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    outputs: dict[str, str] = field(default_factory=dict)
    summary: str = ""


@dataclass
class ActionRun:
    """One invocation of the action: its inputs, step results and the job's environment."""

    inputs: dict[str, str]
    github: dict[str, str]
    env: dict[str, str]
    workdir: Path
    steps: list[StepResult] = field(default_factory=list)
    by_id: dict[str, StepResult] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(not s.ok for s in self.steps if s.ran)

    def step(self, name: str) -> StepResult:
        return next(s for s in self.steps if s.name == name)

    @property
    def stdout(self) -> str:
        return "".join(s.stdout for s in self.steps)

    @property
    def stderr(self) -> str:
        return "".join(s.stderr for s in self.steps)

    @property
    def summary(self) -> str:
        return "".join(s.summary for s in self.steps)

    # -- expressions ----------------------------------------------------------------

    def value(self, name: str) -> str:
        parts = name.split(".")
        if parts[0] == "inputs" and len(parts) == 2:
            return self.inputs[parts[1]]
        if parts[0] == "github" and len(parts) == 2:
            return self.github[parts[1]]
        if parts[0] == "steps" and len(parts) == 4 and parts[2] == "outputs":
            step = self.by_id.get(parts[1])
            return step.outputs.get(parts[3], "") if step else ""
        raise ValueError(f"expression {name!r} is not understood by this simulation")

    def substitute(self, text: Any) -> str:
        return _EXPR.sub(lambda m: self.value(m.group(1)), str(text))

    def condition(self, expr: str | None) -> bool:
        if expr is None:
            return not self.failed
        text = _EXPR.sub(lambda m: m.group(1), str(expr)).strip()
        always = False
        results = []
        for term in (t.strip() for t in text.split("&&")):
            if term == "always()":
                always = True
            elif term == "success()":
                results.append(not self.failed)
            elif match := _TERM.match(term):
                left = self.value(match["left"])
                results.append((left == match["right"]) == (match["op"] == "=="))
            else:
                raise ValueError(f"condition term {term!r} is not understood by this simulation")
        if not always and self.failed:
            return False
        return all(results)


def _unescape(text: str, props: bool) -> str:
    pairs = [("%0D", "\r"), ("%0A", "\n")] + ([("%3A", ":"), ("%2C", ",")] if props else [])
    for escaped, plain in [*pairs, ("%25", "%")]:
        text = text.replace(escaped, plain)
    return text


def parse_command(line: str) -> tuple[str, dict[str, str], str] | None:
    """``::name k=v,k=v::message`` split where the runner splits it: at the first ``::``."""
    if not line.startswith("::"):
        return None
    end = line.find("::", 2)
    if end < 0:
        return None
    info, message = line[2:end], line[end + 2 :]
    name, _, props = info.partition(" ")
    properties = {}
    for prop in filter(None, props.split(",")):
        key, _, value = prop.partition("=")
        properties[key] = _unescape(value, props=True)
    return name, properties, _unescape(message, props=False)


def commands(text: str) -> list[tuple[str, dict[str, str], str]]:
    """The workflow commands among a step's output lines."""
    return [c for c in map(parse_command, text.splitlines()) if c is not None]


def read_outputs(text: str) -> dict[str, str]:
    """A $GITHUB_OUTPUT file's text as the runner reads it (``k=v`` and ``k<<DELIM`` blocks)."""
    out: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        eq, heredoc = line.find("="), line.find("<<")
        if heredoc > 0 and (eq < 0 or heredoc < eq):
            name, delimiter = line[:heredoc], line[heredoc + 2 :]
            end = lines.index(delimiter, i + 1)  # ValueError: the runner fails the step too
            out[name] = "\n".join(lines[i + 1 : end])
            i = end + 1
        elif eq > 0:
            out[line[:eq]] = line[eq + 1 :]
            i += 1
        else:
            i += 1
    return out


def run_action(
    action_file: Path,
    inputs: Mapping[str, str],
    *,
    workdir: Path,
    env: Mapping[str, str],
    github: Mapping[str, str],
    uses: Mapping[str, UsesHandler],
    skip: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> ActionRun:
    """Run every step of ``action_file`` with ``inputs`` (the ``with:`` of the calling step).

    ``uses`` maps an action (``owner/repo[/path]``, the part before ``@``) to its handler;
    ``skip`` maps a step name to the reason it is not run here (e.g. installing the package).
    """
    action = yaml.safe_load(action_file.read_text(encoding="utf-8"))
    declared = action["inputs"]
    unknown = set(inputs) - set(declared)
    if unknown:
        raise ValueError(f"inputs not declared by the action: {sorted(unknown)}")
    run = ActionRun(inputs={}, github=dict(github), env=dict(env), workdir=workdir)
    run.inputs = {
        name: str(inputs[name]) if name in inputs else run.substitute(spec.get("default", ""))
        for name, spec in declared.items()
    }
    for number, step in enumerate(action["runs"]["steps"]):
        name = step.get("name") or step.get("uses") or f"step {number}"
        result = StepResult(name=name, ran=False)
        run.steps.append(result)
        if step.get("id"):
            run.by_id[step["id"]] = result
        if name in (skip or {}) or not run.condition(step.get("if")):
            continue
        result.ran = True
        if "uses" in step:
            ref = step["uses"].split("@", 1)[0]
            handler = uses.get(ref)
            if handler is None:
                raise ValueError(f"no handler for uses: {step['uses']}")
            with_values = {k: run.substitute(v) for k, v in (step.get("with") or {}).items()}
            try:
                result.outputs = handler(with_values, run)
            except StepFailed as exc:
                result.ok, result.stderr = False, str(exc)
            continue
        _run_script(run, step, result, number, timeout)
    run.outputs = {
        name: run.substitute(spec["value"]) for name, spec in (action.get("outputs") or {}).items()
    }
    return run


def _run_script(
    run: ActionRun, step: Mapping[str, Any], result: StepResult, number: int, timeout: float
) -> None:
    if step.get("shell") != "bash":
        raise ValueError(f"step {result.name!r}: only shell: bash is simulated")
    temp = Path(run.env["RUNNER_TEMP"])
    temp.mkdir(parents=True, exist_ok=True)
    script = temp / f"step-{number}.sh"
    script.write_text(step["run"], encoding="utf-8")
    output, summary = temp / f"output-{number}", temp / f"summary-{number}"
    output.write_text("", encoding="utf-8")
    step_env = {k: run.substitute(v) for k, v in (step.get("env") or {}).items()}
    env = {
        **run.env,
        "GITHUB_OUTPUT": str(output),
        "GITHUB_STEP_SUMMARY": str(summary),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{run.env.get('PATH', '')}",
        **step_env,
    }
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
        cwd=run.workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    result.exit_code = proc.returncode
    result.ok = proc.returncode == 0
    result.stdout, result.stderr = proc.stdout, proc.stderr
    result.outputs = read_outputs(output.read_text(encoding="utf-8"))
    result.summary = summary.read_text(encoding="utf-8") if summary.exists() else ""
