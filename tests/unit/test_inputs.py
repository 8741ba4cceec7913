"""tests/inputs.py: where the external inputs are found, and the CRD download.

Downloads go to file:// URLs (this machine reaches no release host): the same
download function, checksum and all-or-nothing rename as a real https fetch. The
CI rule (nothing skipped for a missing input) is checked on a real pytest process.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import inputs
import pytest
from inputs import CRDS_SKIP, SELDON_CRDS, TELCO_FILE, TELCO_SKIP, CrdFile, InputError

from churn.settings import PROJECT_ROOT


@pytest.fixture
def bare(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """No input configured, an empty shared folder and an empty cache: a fresh clone."""
    for name in (
        "CHURN_TELCO_CSV",
        "CHURN_TELCO_URL",
        "CHURN_TELCO_SHA256",
        "CHURN_SELDON_CRDS",
        "CHURN_SELDON_CRDS_BASE_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / "shared").mkdir()
    monkeypatch.setenv("CHURN_SHARED_DIR", str(tmp_path / "shared"))
    monkeypatch.setenv("CHURN_CACHE_DIR", str(tmp_path / "cache"))
    yield tmp_path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _mirror(root: Path, files: dict[str, bytes]) -> tuple[str, tuple[CrdFile, ...]]:
    """A release mirror under `root` laid out as <tag>/<path>, and its pinned table."""
    table = []
    for name, data in files.items():
        crd = CrdFile(name, "v9.9.9", f"crds/{name}", _sha(data))
        (root / crd.tag / "crds").mkdir(parents=True, exist_ok=True)
        (root / crd.tag / crd.path).write_bytes(data)
        table.append(crd)
    return root.as_uri(), tuple(table)


# ------------------------------------------------------------------ Telco CSV


def test_nothing_configured_finds_nothing(bare: Path) -> None:
    assert inputs.find_telco_csv() is None
    assert inputs.find_crd_dir() is None


def test_the_shared_folder_is_the_last_resort(bare: Path) -> None:
    (bare / "shared" / "data").mkdir()
    (bare / "shared" / "data" / TELCO_FILE).write_text("x")
    (bare / "shared" / "k8s-crds").mkdir()
    assert inputs.find_telco_csv() == bare / "shared" / "data" / TELCO_FILE
    assert inputs.find_crd_dir() == bare / "shared" / "k8s-crds"


def test_the_variable_beats_the_shared_folder(bare: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (bare / "shared" / "data").mkdir()
    (bare / "shared" / "data" / TELCO_FILE).write_text("x")
    mine = bare / "mine.csv"
    mine.write_text("y")
    monkeypatch.setenv("CHURN_TELCO_CSV", str(mine))
    assert inputs.find_telco_csv() == mine


def test_a_variable_pointing_at_nothing_is_an_error_not_a_skip(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_TELCO_CSV", str(bare / "absent.csv"))
    with pytest.raises(InputError, match=r"CHURN_TELCO_CSV=.*absent\.csv"):
        inputs.find_telco_csv()
    monkeypatch.setenv("CHURN_SELDON_CRDS", str(bare / "no-dir"))
    with pytest.raises(InputError, match=r"CHURN_SELDON_CRDS=.*no-dir"):
        inputs.find_crd_dir()


def test_a_url_is_downloaded_once_into_the_cache_checked(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = bare / "served.csv"
    source.write_bytes(b"customerID\n1\n")
    monkeypatch.setenv("CHURN_TELCO_URL", source.as_uri())
    monkeypatch.setenv("CHURN_TELCO_SHA256", _sha(source.read_bytes()))
    found = inputs.find_telco_csv()
    assert found is not None and found.parent == bare / "cache"
    assert found.read_bytes() == source.read_bytes()
    source.unlink()  # a second run reads the cache: no request
    assert inputs.find_telco_csv() == found


def test_a_url_with_the_wrong_checksum_fails_and_caches_nothing(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = bare / "served.csv"
    source.write_bytes(b"tampered\n")
    monkeypatch.setenv("CHURN_TELCO_URL", source.as_uri())
    monkeypatch.setenv("CHURN_TELCO_SHA256", "0" * 64)
    with pytest.raises(InputError, match="sha256 mismatch"):
        inputs.find_telco_csv()
    assert not (bare / "cache").exists() or list((bare / "cache").iterdir()) == []


def test_the_synthetic_stand_in_is_labelled_as_such(bare: Path) -> None:
    path, label = inputs.benchmark_telco_csv(None, bare / "scratch")
    assert path.is_file() and "synthetic" in label and "CHURN_TELCO_CSV" in label
    with pytest.raises(InputError, match="--csv"):
        inputs.benchmark_telco_csv(bare / "absent.csv", bare)


# ------------------------------------------------------------------ CRDs


def test_fetch_crds_downloads_every_file_and_publishes_the_folder(bare: Path) -> None:
    base, table = _mirror(bare / "mirror", {"a.yaml": b"kind: A\n", "b.yaml": b"kind: B\n"})
    target = inputs.fetch_crds(base_url=base, files=table)
    assert target == bare / "cache" / inputs.CRDS_CACHE_NAME
    assert sorted(p.name for p in target.iterdir()) == ["a.yaml", "b.yaml"]
    assert (target / "b.yaml").read_bytes() == b"kind: B\n"
    assert inputs.find_crd_dir() == target  # the cache is found once filled
    shutil.rmtree(bare / "mirror")  # complete cache: reused without a request
    assert inputs.fetch_crds(base_url=base, files=table) == target


def test_a_wrong_checksum_names_the_file_and_leaves_no_partial_cache(bare: Path) -> None:
    base, table = _mirror(bare / "mirror", {"a.yaml": b"kind: A\n", "b.yaml": b"kind: B\n"})
    wrong = (table[0], CrdFile("b.yaml", table[1].tag, table[1].path, "f" * 64))
    with pytest.raises(InputError, match=r"^b\.yaml from file://.*sha256 mismatch"):
        inputs.fetch_crds(base_url=base, files=wrong)
    cache = bare / "cache"
    assert list(cache.iterdir()) == []  # neither the target nor a staging folder
    assert inputs.find_crd_dir() is None


def test_a_missing_upstream_file_fails_the_same_way(bare: Path) -> None:
    base, table = _mirror(bare / "mirror", {"a.yaml": b"kind: A\n"})
    gone = (*table, CrdFile("c.yaml", "v9.9.9", "crds/c.yaml", "0" * 64))
    with pytest.raises(InputError, match=r"^c\.yaml from"):
        inputs.fetch_crds(base_url=base, files=gone)
    assert list((bare / "cache").iterdir()) == []


def test_the_base_url_comes_from_the_environment(
    bare: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base, table = _mirror(bare / "mirror", {"a.yaml": b"kind: A\n"})
    monkeypatch.setenv("CHURN_SELDON_CRDS_BASE_URL", base)
    assert (inputs.fetch_crds(files=table) / "a.yaml").is_file()


def test_the_pinned_checksums_are_the_crds_the_tests_validate_against(crd_dir: Path) -> None:
    for crd in SELDON_CRDS:
        path = crd_dir / crd.name
        assert path.is_file(), f"{crd.name} is not in {crd_dir}"
        assert _sha(path.read_bytes()) == crd.sha256, crd.name


def test_make_crds_fills_the_cache_from_an_upstream_layout_mirror(
    crd_dir: Path, tmp_path: Path
) -> None:
    """The pinned table fetched from a mirror laid out as the upstream repository."""
    mirror = tmp_path / "seldon-core"
    for crd in SELDON_CRDS:
        (mirror / crd.tag / crd.path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(crd_dir / crd.name, mirror / crd.tag / crd.path)
    env = {
        **os.environ,
        "CHURN_CACHE_DIR": str(tmp_path / "cache"),
        "CHURN_SELDON_CRDS_BASE_URL": mirror.as_uri(),
    }
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tests" / "inputs.py"), "crds"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    cached = tmp_path / "cache" / inputs.CRDS_CACHE_NAME
    assert sorted(p.name for p in cached.iterdir()) == sorted(c.name for c in SELDON_CRDS)


# ------------------------------------------------------------------ the rule in CI


def _pytest(tmp_path: Path, *, ci: bool, test: str) -> subprocess.CompletedProcess[str]:
    """A real pytest run of one test on a machine without inputs (empty shared, cache)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CHURN_", "PYTEST_"))}
    env.update(
        CI="true" if ci else "",
        CHURN_SHARED_DIR=str(tmp_path / "no-shared"),
        CHURN_CACHE_DIR=str(tmp_path / "no-cache"),
    )
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", test],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


REAL_ONLY = "tests/data/test_telco.py::test_real_csv_counts"
CRD_ONLY = (
    "tests/unit/test_inputs.py::test_the_pinned_checksums_are_the_crds_the_tests_validate_against"
)


def test_without_ci_a_missing_input_is_one_explained_skip(tmp_path: Path) -> None:
    done = _pytest(tmp_path, ci=False, test=REAL_ONLY)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout and TELCO_SKIP in done.stdout
    assert "churn: 1 tests skipped for missing inputs: 1 need the real Telco CSV" in done.stdout


def test_under_ci_a_missing_input_fails_the_run_naming_it(tmp_path: Path) -> None:
    telco = _pytest(tmp_path, ci=True, test=REAL_ONLY)
    assert telco.returncode == pytest.ExitCode.USAGE_ERROR, telco.stdout + telco.stderr
    assert "the real Telco CSV (set CHURN_TELCO_CSV" in telco.stderr
    crds = _pytest(tmp_path, ci=True, test=CRD_ONLY)
    assert crds.returncode == pytest.ExitCode.USAGE_ERROR, crds.stdout + crds.stderr
    assert "the Seldon CRDs (set CHURN_SELDON_CRDS" in crds.stderr
    assert CRDS_SKIP not in crds.stdout  # failed, not skipped
