"""Loading, validating, selecting and fetching datasets (pytest_bsa.dataset)."""

from __future__ import annotations

import collections
import csv
import hashlib
import http.server
import io
import json
import os
import pickle
import re
import socket
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytest_bsa import dataset
from pytest_bsa.dataset import (
    COLUMNS,
    DatasetError,
    DatasetSource,
    default_cache_dir,
    load_dataset,
    resolve_source,
    sha256_file,
)
from pytest_bsa.models import CATEGORIES, SCENARIOS, Instance, Label
from pytest_bsa.selection import select

SAMPLE = Path(dataset.__file__).parent / "data" / "sample.csv"
RO, CS, OS = SCENARIOS
PRIVACY = "Invasion of Privacy and Confidentiality"


# --------------------------------------------------------------------------- helpers


def row(
    instance_id: str = "r1",
    scenario: str = RO,
    label: str = "Rumors-Fabricated News",
    query: str = "A user asks for a made-up news story about a local shop.",
    risk: str = "The story would mislead readers.",
) -> dict[str, str]:
    return {
        "id": instance_id,
        "query": query,
        "risk_summary": risk,
        "dataset_name": scenario,
        "label": label,
    }


def cs_row(instance_id: str = "c1", a: str = "Rumors-Fabricated News", b: str = "") -> dict:
    b = b or f"{PRIVACY}-Personal Information Leakage"
    return row(
        instance_id,
        CS,
        f"Query A: {a}\nQuery B: {b}",
        risk="Query A: first risk.\nQuery B: second risk.",
    )


def write_csv(path: Path, rows: Sequence[dict[str, str]], header: Sequence[str] = COLUMNS) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        for record in rows:
            writer.writerow([record.get(name, "") for name in header])
    return path


def load_error(path: Path) -> DatasetError:
    with pytest.raises(DatasetError) as info:
        load_dataset(path)
    return info.value


def assert_located(err: DatasetError, path: Path, line: int, field: str | None) -> None:
    text = str(err)
    assert text.startswith(f"{path}:{line}: "), text
    assert (err.path, err.line, err.field) == (str(path), line, field)
    if field is not None:
        assert f"field {field!r}: " in text


def make_instance(i: int, scenario: str, categories: Sequence[str]) -> Instance:
    return Instance(
        id=f"syn-{i}",
        query=f"synthetic query {i}",
        risk_summary="synthetic risk",
        scenario=scenario,
        labels=tuple(Label(category=c, subcategory="Synthetic") for c in categories),
        line=i + 2,
    )


def strata(instances: Sequence[Instance]) -> set[tuple[str, str]]:
    return {(i.scenario, c) for i in instances for c in i.categories}


# --------------------------------------------------------------------------- the sample


def test_sample_source_and_contents() -> None:
    source = resolve_source("sample")
    assert source == DatasetSource("sample", SAMPLE.resolve(), sha256_file(SAMPLE), None)
    assert source.label == "sample"
    instances = load_dataset(source.path)
    assert len(instances) == 45
    assert collections.Counter(i.scenario for i in instances) == {RO: 15, CS: 20, OS: 10}
    rows_per_category = collections.Counter(c for i in instances for c in i.categories)
    assert set(rows_per_category) == set(CATEGORIES)
    assert min(rows_per_category.values()) >= 3
    for instance in instances:
        assert re.fullmatch(r"[0-9a-f]{32}", instance.id)
        if instance.scenario == CS:
            assert len(instance.labels) == 2
            assert instance.risk_summary.startswith("Query A: ")
            assert "\nQuery B: " in instance.risk_summary
        else:
            assert len(instance.labels) == 1
    lines = [i.line for i in instances]
    assert lines == sorted(set(lines)) and lines[0] == 2


def test_sample_ids_are_md5_of_slugs() -> None:
    instances = load_dataset(SAMPLE)
    prefix = {RO: "ro", CS: "cs", OS: "os"}
    counters: collections.Counter[str] = collections.Counter()
    for instance in instances:
        counters[instance.scenario] += 1
        slug = f"pytest-bsa-sample-{prefix[instance.scenario]}-{counters[instance.scenario]:02d}"
        assert instance.id == hashlib.md5(slug.encode()).hexdigest()


def test_sample_line_numbers_point_at_record_starts() -> None:
    physical = SAMPLE.read_text(encoding="utf-8").split("\n")
    for instance in load_dataset(SAMPLE):
        assert physical[instance.line - 1].startswith(f"{instance.id},")


# --------------------------------------------------------------------------- parsing


def test_labels_split_on_first_dash_only(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "d.csv",
        [
            row("a", label="Specially Regulated Items-Weapons and Self-Defense Items"),
            row("b", label="Specially Regulated Items-Drugs / Other Controlled Substances"),
            cs_row("c", a="Rumors-Fabricated News", b="Rumors-Health Misinformation"),
        ],
    )
    a, b, c = load_dataset(path)
    assert a.labels == (
        Label(category="Specially Regulated Items", subcategory="Weapons and Self-Defense Items"),
    )
    assert b.labels[0].subcategory == "Drugs / Other Controlled Substances"
    assert [str(label) for label in c.labels] == [
        "Rumors-Fabricated News",
        "Rumors-Health Misinformation",
    ]
    assert c.categories == ("Rumors",)


def test_prefix_free_cognitive_shortcut_labels_and_extra_columns(tmp_path: Path) -> None:
    header = ("note", *COLUMNS, "extra")
    record = row("c", CS, "Rumors-Fabricated News\nPornography-Adult Content Requests")
    path = write_csv(tmp_path / "d.csv", [record | {"note": "x", "extra": "y"}], header)
    (instance,) = load_dataset(path)
    assert instance.categories == ("Rumors", "Pornography")


def test_multiline_fields_get_physical_line_numbers(tmp_path: Path) -> None:
    rows = [
        row("a", query="first line\nsecond line\nthird line"),
        cs_row("b"),
        row("c", risk="one\n\ntwo"),
        row("d"),
    ]
    path = write_csv(tmp_path / "d.csv", rows)
    assert [i.line for i in load_dataset(path)] == [2, 5, 8, 11]
    assert load_dataset(path)[0].query == "first line\nsecond line\nthird line"
    # An error after the multi-line records names the right physical line.
    bad = write_csv(tmp_path / "bad.csv", [*rows, row("e", label="Rumors")])
    assert_located(load_error(bad), bad, 12, "label")


def test_crlf_file_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerow(row("a", query="two\r\nlines").values())
    buffer.write("\r\n")
    writer.writerow(row("b").values())
    path.write_bytes(("\ufeff" + buffer.getvalue()).encode("utf-8"))
    a, b = load_dataset(path)
    assert (a.line, b.line) == (2, 5)


# --------------------------------------------------------------------------- validation


def test_error_message_format() -> None:
    err = DatasetError(
        "malformed label 'Rumors' (expected 'Category-Subcategory')",
        path="data.csv",
        line=17,
        field="label",
    )
    assert str(err) == (
        "data.csv:17: field 'label': malformed label 'Rumors' (expected 'Category-Subcategory')"
    )
    assert str(DatasetError("boom")) == "boom"
    assert str(DatasetError("boom", path="x.csv")) == "x.csv: boom"
    assert str(DatasetError("boom", field="limit")) == "field 'limit': boom"
    assert isinstance(err, ValueError)
    clone = pickle.loads(pickle.dumps(err))
    assert (str(clone), clone.path, clone.line, clone.field) == (str(err), "data.csv", 17, "label")


@pytest.mark.parametrize(
    ("bad", "line", "field", "expected"),
    [
        pytest.param(row(query=""), 3, "query", ["empty value"], id="empty"),
        pytest.param(row(risk="  \n "), 3, "risk_summary", ["empty value"], id="blank"),
        pytest.param(row(scenario=""), 3, "dataset_name", ["empty value"], id="empty-scenario"),
        pytest.param(
            row(scenario="Risk Omision"),
            3,
            "dataset_name",
            [
                "unknown scenario 'Risk Omision'",
                "did you mean 'Risk Omission'?",
                *map(repr, SCENARIOS),
            ],
            id="unknown-scenario",
        ),
        pytest.param(
            row(label="Rumors"),
            3,
            "label",
            ["malformed label 'Rumors' (expected 'Category-Subcategory')"],
            id="no-dash",
        ),
        pytest.param(row(label="Rumors-  "), 3, "label", ["malformed label"], id="no-subcategory"),
        pytest.param(
            row(label="Rumours-Fabricated News"),
            3,
            "label",
            ["unknown category 'Rumours'", "did you mean 'Rumors'?", "Pornography"],
            id="unknown-category",
        ),
        pytest.param(
            row(label="privacy invasion-Leaks"),
            3,
            "label",
            ["unknown category 'privacy invasion'", "the nine are: Offense and Prejudice"],
            id="unknown-category-no-suggestion",
        ),
        pytest.param(
            row(scenario=CS, label="Query A: Rumors-Fabricated News"),
            3,
            "label",
            ["Cognitive Shortcut row needs exactly two labels, found 1"],
            id="cs-one-label",
        ),
        pytest.param(
            row(scenario=CS, label="Rumors-A\nRumors-B\nRumors-C"),
            3,
            "label",
            ["exactly two labels, found 3"],
            id="cs-three-labels",
        ),
        pytest.param(
            row(scenario=CS, label="Query B: Rumors-A\nQuery A: Rumors-B"),
            3,
            "label",
            ["malformed labels", "'Query A: Category-Subcategory' then"],
            id="cs-swapped-prefixes",
        ),
        pytest.param(
            row(label="Rumors-A\nRumors-B"),
            3,
            "label",
            ["a Risk Omission row needs exactly one label, found 2"],
            id="ro-two-labels",
        ),
        pytest.param(
            row(scenario=OS, label="Query A: Rumors-Fabricated News"),
            3,
            "label",
            ["'Query A:' prefix belongs to Cognitive Shortcut rows only"],
            id="os-prefixed",
        ),
        pytest.param(row("has space"), 3, "id", ["id 'has space' contains whitespace"], id="id-ws"),
        pytest.param(row("r0"), 3, "id", ["duplicate id 'r0' (first seen on line 2)"], id="dup"),
    ],
)
def test_validation_errors(
    tmp_path: Path, bad: dict[str, str], line: int, field: str, expected: list[str]
) -> None:
    path = write_csv(tmp_path / "data.csv", [row("r0"), bad])
    err = load_error(path)
    assert_located(err, path, line, field)
    for text in expected:
        assert text in str(err)


def test_missing_columns(tmp_path: Path) -> None:
    header = ("id", "query", "dataset_name")
    path = write_csv(tmp_path / "data.csv", [row()], header)
    err = load_error(path)
    assert_located(err, path, 1, "risk_summary")
    assert "missing columns 'risk_summary', 'label'" in str(err)
    assert "expected header: id,query,risk_summary,dataset_name,label" in str(err)


def test_short_row_is_an_empty_field(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    path.write_text(",".join(COLUMNS) + "\nr1,a query,a risk,Risk Omission\n", encoding="utf-8")
    assert_located(load_error(path), path, 2, "label")


def test_long_values_are_truncated_in_messages(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "data.csv", [row(label="x" * 500)])
    message = str(load_error(path))
    quoted = re.search(r"malformed label ('[^']*')", message)
    assert quoted is not None
    assert quoted.group(1).endswith("...'") and len(quoted.group(1)) <= 64


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    write_csv(path, [row("a"), row("b")])
    path.write_bytes(path.read_bytes().replace(b"made-up", b"made\xff-up", 1))
    err = load_error(path)
    assert_located(err, path, 2, None)
    assert "not UTF-8" in str(err) and "\\xff" in str(err)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param("", "file is empty", id="empty"),
        pytest.param(" \n\n", "file is empty", id="whitespace"),
        pytest.param(",".join(COLUMNS) + "\n", "no instances", id="header-only"),
    ],
)
def test_empty_files(tmp_path: Path, content: str, expected: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(content, encoding="utf-8")
    err = load_error(path)
    assert str(err) == f"{path}: {err.message}"
    assert expected in str(err)


def test_malformed_csv_quoting(tmp_path: Path) -> None:
    path = tmp_path / "data.csv"
    good = "r1,q,r,Risk Omission,Rumors-Fabricated News\n"
    path.write_text(",".join(COLUMNS) + "\n" + good + 'r2,"q"x,r,Risk Omission,Rumors-A\n')
    err = load_error(path)
    assert_located(err, path, 3, None)
    assert "malformed CSV" in str(err)


def test_missing_file_and_wrong_suffix(tmp_path: Path) -> None:
    missing = tmp_path / "nope.csv"
    assert str(load_error(missing)) == f"{missing}: file not found"
    other = tmp_path / "data.txt"
    other.write_text("x", encoding="utf-8")
    assert "expected .csv, .jsonl or .json" in str(load_error(other))
    folder = tmp_path / "folder.csv"
    folder.mkdir()
    assert str(load_error(folder)) == f"{folder}: is a directory, not a file"


# --------------------------------------------------------------------------- JSON lines


def write_jsonl(path: Path, records: Sequence[object]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
    path.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8", newline="")
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_jsonl_loads(tmp_path: Path, suffix: str) -> None:
    cs = cs_row("b") | {"label": ["Query A: Rumors-X", "Query B: Pornography-Y"], "note": 1}
    unusual = row("c", OS, query="a query with a line separator \u2028 inside")
    path = write_jsonl(tmp_path / f"data{suffix}", [row("a"), "", cs, unusual])
    a, b, c = load_dataset(path)
    assert c.query == unusual["query"]
    assert (a.line, b.line, c.line) == (1, 3, 4)
    assert b.categories == ("Rumors", "Pornography")
    assert c.scenario == OS


@pytest.mark.parametrize(
    ("bad", "field", "expected"),
    [
        pytest.param("{not json", None, "invalid JSON", id="syntax"),
        pytest.param("[1, 2]", None, "expected a JSON object per line, got list", id="array"),
        pytest.param({"id": "x", "query": "q"}, "risk_summary", "missing keys", id="keys"),
        pytest.param(row() | {"id": 7}, "id", "expected a string, got int", id="type"),
        pytest.param(row("r0"), "id", "duplicate id 'r0' (first seen on line 1)", id="dup"),
        pytest.param(row(label="Rumors"), "label", "malformed label 'Rumors'", id="label"),
    ],
)
def test_jsonl_errors(tmp_path: Path, bad: object, field: str | None, expected: str) -> None:
    path = write_jsonl(tmp_path / "data.jsonl", [row("r0"), bad])
    err = load_error(path)
    assert_located(err, path, 2, field)
    assert expected in str(err)


# --------------------------------------------------------------------------- select


@pytest.fixture
def mixed() -> list[Instance]:
    specs = [
        (RO, ["Rumors"]),
        (CS, ["Rumors", PRIVACY]),
        (OS, ["Pornography"]),
        (CS, [PRIVACY, "Ethics and Morality"]),
        (RO, ["Ethics and Morality"]),
    ]
    return [make_instance(i, s, c) for i, (s, c) in enumerate(specs)]


def test_select_filters(mixed: list[Instance]) -> None:
    assert select(mixed) == mixed
    assert [i.id for i in select(mixed, scenarios=[CS])] == ["syn-1", "syn-3"]
    assert [i.id for i in select(mixed, categories={PRIVACY})] == ["syn-1", "syn-3"]
    picked = select(mixed, scenarios=(RO, OS), categories=["Rumors", "Pornography"])
    assert [i.id for i in picked] == ["syn-0", "syn-2"]
    assert [i.id for i in select(mixed, categories="Rumors")] == ["syn-0", "syn-1"]
    assert select(mixed, scenarios=[OS], categories=["Rumors"]) == []
    assert select(mixed, limit=99) == mixed


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"scenarios": ["Over sensitivity"]}, "did you mean 'Over Sensitivity'?"),
        ({"categories": ["Rumours"]}, "unknown category 'Rumours'; did you mean 'Rumors'?"),
        ({"limit": 0}, "limit must be a positive number of instances, got 0"),
        ({"limit": -3}, "got -3"),
    ],
)
def test_select_rejects_bad_arguments(
    mixed: list[Instance], kwargs: dict[str, object], expected: str
) -> None:
    with pytest.raises(DatasetError, match=re.escape(expected)):
        select(mixed, **kwargs)  # type: ignore[arg-type]


def test_select_proportional_allocation() -> None:
    categories = ["Rumors"] * 60 + ["Pornography"] * 30 + [PRIVACY] * 10
    pool = [make_instance(i, RO, [category]) for i, category in enumerate(categories)]
    picked = select(pool, limit=10, seed=3)
    assert collections.Counter(i.categories[0] for i in picked) == {
        "Rumors": 6,
        "Pornography": 3,
        PRIVACY: 1,
    }
    skewed = [make_instance(i, RO, ["Rumors"]) for i in range(97)]
    skewed += [make_instance(97, RO, ["Pornography"]), make_instance(98, OS, ["Pornography"])]
    skewed.append(make_instance(99, RO, [PRIVACY]))
    counts = collections.Counter((i.scenario, i.categories[0]) for i in select(skewed, limit=10))
    assert counts == {(RO, "Rumors"): 7, (RO, "Pornography"): 1, (OS, "Pornography"): 1,
                      (RO, PRIVACY): 1}  # fmt: skip
    assert len(select(skewed, limit=2)) == 2


synthetic = st.lists(
    st.tuples(
        st.sampled_from(SCENARIOS),
        st.sampled_from(CATEGORIES[:5]),
        st.one_of(st.none(), st.sampled_from(CATEGORIES[:5])),
    ),
    min_size=1,
    max_size=80,
)


def build(specs: Sequence[tuple[str, str, str | None]]) -> list[Instance]:
    out = []
    for i, (scenario, first, second) in enumerate(specs):
        categories = [first] if second is None or scenario != CS else [first, second]
        out.append(make_instance(i, scenario, categories))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(specs=synthetic, limit=st.integers(1, 90), seed=st.integers(0, 2**32))
def test_select_properties(specs: list[tuple[str, str, str | None]], limit: int, seed: int) -> None:
    pool = build(specs)
    picked = select(pool, limit=limit, seed=seed)
    assert len(picked) == min(limit, len(pool))
    assert select(pool, limit=limit, seed=seed) == picked
    positions = [int(i.id.removeprefix("syn-")) for i in picked]
    assert positions == sorted(set(positions))
    assert all(pool[p] is inst for p, inst in zip(positions, picked, strict=True))
    present = strata(pool)
    if limit >= len(present):
        assert strata(picked) == present


@settings(max_examples=100, deadline=None)
@given(specs=synthetic, limit=st.integers(1, 90), seed=st.integers(0, 2**32))
def test_select_single_category_is_largest_remainder(
    specs: list[tuple[str, str, str | None]], limit: int, seed: int
) -> None:
    pool = build([(s, c, None) for s, c, _ in specs])
    present = strata(pool)
    if limit >= len(pool) or limit >= len(present):
        return
    counts = collections.Counter((i.scenario, i.categories[0]) for i in select(pool, limit=limit))
    sizes = collections.Counter((i.scenario, i.categories[0]) for i in pool)
    for key, size in sizes.items():
        assert abs(counts[key] - limit * size / len(pool)) < 1


# --------------------------------------------------------------------------- sources


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("BSA_CACHE_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    assert default_cache_dir() == tmp_path / ".cache" / "pytest-bsa"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "pytest-bsa"
    monkeypatch.setenv("BSA_CACHE_DIR", "~/bsa")
    assert default_cache_dir() == tmp_path / "bsa"


def test_resolve_path_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    path = write_csv(tmp_path / "mine.csv", [row()])
    source = resolve_source("~/mine.csv")
    assert source == DatasetSource("~/mine.csv", path, sha256_file(path), None)
    assert source.label == str(path)
    assert source.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    with pytest.raises(DatasetError, match="file not found") as info:
        resolve_source(str(tmp_path / "absent.csv"))
    assert str(info.value).startswith(f"{tmp_path / 'absent.csv'}: ")
    with pytest.raises(DatasetError, match="is a directory"):
        resolve_source(str(tmp_path))


HUB_PATH = f"/datasets/{dataset.HF_REPO}/resolve/{dataset.HF_REVISION}/{dataset.HF_FILE}"


class HubHandler(http.server.BaseHTTPRequestHandler):
    """A tiny stand-in for the hub: redirects like it does, then serves the file."""

    body = SAMPLE.read_bytes()
    requests: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.requests.append(self.path)
        if self.path == HUB_PATH:
            self.send_response(302)
            self.send_header("Location", "/cdn/dataset.csv")
            self.end_headers()
        elif self.path == "/cdn/dataset.csv":
            self.send_response(200)
            self.send_header("Content-Length", str(len(self.body)))
            self.end_headers()
            self.wfile.write(self.body)
        else:
            self.send_error(404)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Serve the sample as the hub file on 127.0.0.1; yields the request log."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HubHandler)
    HubHandler.requests = []
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_port}/")
    monkeypatch.setattr(dataset, "HF_SHA256", hashlib.sha256(HubHandler.body).hexdigest())
    try:
        yield HubHandler.requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def closed_port_endpoint() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_hf_download_then_reuse_without_network(
    hub: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = resolve_source("hf", cache_dir=tmp_path)
    assert hub == [HUB_PATH, "/cdn/dataset.csv"]
    assert source.path.parent == tmp_path / "datasets"
    assert source.path.read_bytes() == SAMPLE.read_bytes()
    assert (source.sha256, source.revision) == (dataset.HF_SHA256, "main")
    assert source.label == "hf:OpenStellarTeam/BeyongSafeAnswer_Benchmark@main"
    assert len(load_dataset(source.path)) == 45
    assert os.listdir(tmp_path / "datasets") == [source.path.name]  # no temp files left

    monkeypatch.setenv("HF_ENDPOINT", closed_port_endpoint())
    again = resolve_source("hf", cache_dir=tmp_path)
    assert again == source
    assert len(hub) == 2


def test_hf_corrupt_cache_is_downloaded_again(hub: list[str], tmp_path: Path) -> None:
    first = resolve_source("hf", cache_dir=tmp_path)
    first.path.write_bytes(b"truncated")
    assert resolve_source("hf", cache_dir=tmp_path) == first
    assert first.path.read_bytes() == SAMPLE.read_bytes()
    assert len(hub) == 4


def test_hf_uses_default_cache_dir(
    hub: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BSA_CACHE_DIR", str(tmp_path / "cache"))
    assert resolve_source("hf").path.parent == tmp_path / "cache" / "datasets"


def test_hf_hash_mismatch(hub: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset, "HF_SHA256", "0" * 64)
    with pytest.raises(DatasetError) as info:
        resolve_source("hf", cache_dir=tmp_path)
    message = str(info.value)
    assert f"sha256 {hashlib.sha256(SAMPLE.read_bytes()).hexdigest()}, expected {'0' * 64}" in (
        message
    )
    assert "--bsa-dataset=/path/to/dataset.csv" in message
    assert os.listdir(tmp_path / "datasets") == []


def test_hf_http_error(hub: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(dataset, "HF_REVISION", "no-such-revision")
    with pytest.raises(DatasetError, match="failed with HTTP 404") as info:
        resolve_source("hf", cache_dir=tmp_path)
    assert "/resolve/no-such-revision/dataset.csv" in str(info.value)
    assert "download it yourself and pass --bsa-dataset=/path/to/dataset.csv" in str(info.value)


def test_hf_unwritable_cache(hub: list[str], tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("", encoding="utf-8")
    with pytest.raises(DatasetError, match="cannot write to the cache directory"):
        resolve_source("hf", cache_dir=blocker)
    assert hub == []


def test_hf_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    endpoint = closed_port_endpoint()
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    with pytest.raises(DatasetError) as info:
        resolve_source("hf", cache_dir=tmp_path)
    message = str(info.value)
    assert message.startswith(f"downloading {endpoint}{HUB_PATH} failed (")
    assert message.endswith("download it yourself and pass --bsa-dataset=/path/to/dataset.csv")
    assert os.listdir(tmp_path / "datasets") == []


# --------------------------------------------------------------------------- the real file


@pytest.fixture(scope="module")
def real() -> list[Instance]:
    location = os.environ.get("BSA_DATASET_PATH")
    if not location or not Path(location).is_file():
        pytest.skip("set BSA_DATASET_PATH to the real BSA dataset.csv")
    return load_dataset(Path(location))


def test_real_file_loads(real: list[Instance]) -> None:
    assert len(real) == 2000
    assert collections.Counter(i.scenario for i in real) == {RO: 600, CS: 1200, OS: 200}
    assert collections.Counter(label.category for i in real for label in i.labels) == {
        "Offense and Prejudice": 720,
        "Specially Regulated Items": 407,
        "Property Infringement": 373,
        "Invasion of Privacy and Confidentiality": 372,
        "Physical and Mental Health": 369,
        "Violence and Terrorism": 320,
        "Ethics and Morality": 300,
        "Rumors": 187,
        "Pornography": 152,
    }
    assert all(len(i.labels) == (2 if i.scenario == CS else 1) for i in real)


def test_real_file_selection(real: list[Instance]) -> None:
    first = select(real, limit=90, seed=1)
    assert select(real, limit=90, seed=1) == first
    assert len(first) == 90
    assert strata(first) == strata(real)
    assert select(real, limit=90, seed=2) != first
