"""The Telco loader: counts and cleaning on the real CSV, sources and sha256 checks.

Downloads go through a real HTTP server on a local socket (no mocks), serving
files from tmp_path.
"""

from __future__ import annotations

import functools
import shutil
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pandas as pd
import pytest

from churn.data.telco import DataSourceError, file_sha256, load_telco
from churn.schema import ENTITY_KEY, FEATURES, LABEL, Kind, feature_names
from churn.settings import get_settings

TELCO_SHA256 = "88be4b93fbe0cc83421af1c503794c97c342eca914c1576db7c276e61d61358a"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """Keep the test output clean (the default logs every request to stderr)."""


@pytest.fixture
def settings_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Settings with home in tmp_path and no Telco source configured."""
    home = tmp_path / "home"
    monkeypatch.setenv("CHURN_HOME", str(home))
    monkeypatch.delenv("CHURN_TELCO_CSV", raising=False)
    monkeypatch.delenv("CHURN_TELCO_URL", raising=False)
    monkeypatch.delenv("CHURN_TELCO_SHA256", raising=False)
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def http_dir(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1: (directory, base URL)."""
    root = tmp_path / "served"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _tampered_copy(source: Path, dest: Path) -> Path:
    """A copy of the CSV with one byte of the first customer id changed (still parseable)."""
    data = bytearray(source.read_bytes())
    first_row = data.index(b"\n") + 1
    data[first_row] = ord("8") if data[first_row] != ord("8") else ord("9")
    dest.write_bytes(bytes(data))
    return dest


def test_real_csv_counts(telco_df: pd.DataFrame) -> None:
    assert len(telco_df) == 7043
    assert int(telco_df[LABEL].sum()) == 1869
    assert telco_df[ENTITY_KEY].is_unique


def test_blank_total_charges_become_zero_for_first_month(
    telco_csv_path: Path, telco_df: pd.DataFrame
) -> None:
    raw = pd.read_csv(telco_csv_path, dtype=str, keep_default_na=False)
    blank_ids = raw.loc[raw["TotalCharges"].str.strip() == "", "customerID"]
    assert len(blank_ids) == 11
    rows = telco_df.set_index(ENTITY_KEY).loc[blank_ids]
    assert (rows["total_charges"] == 0.0).all()
    assert (rows["tenure"] == 0).all()
    assert telco_df["total_charges"].notna().all()


def test_columns_and_dtypes(telco_df: pd.DataFrame) -> None:
    assert list(telco_df.columns) == [ENTITY_KEY, *feature_names(), LABEL]
    expected = {Kind.CATEGORY: "object", Kind.INT: "int64", Kind.FLOAT: "float64"}
    for feat in FEATURES:
        assert str(telco_df[feat.name].dtype) == expected[feat.kind], feat.name
    assert str(telco_df[ENTITY_KEY].dtype) == "object"
    assert all(isinstance(v, str) for v in telco_df[ENTITY_KEY])
    assert all(isinstance(v, str) for v in telco_df["contract"])
    assert str(telco_df[LABEL].dtype) == "int64"
    assert set(telco_df[LABEL].unique()) == {0, 1}
    assert set(telco_df["senior_citizen"].unique()) == {0, 1}
    assert "event_timestamp" not in telco_df.columns


def test_published_file_matches_the_configured_hash(telco_csv_path: Path) -> None:
    assert file_sha256(telco_csv_path) == TELCO_SHA256
    assert get_settings().telco_sha256 == TELCO_SHA256


def test_local_path_verified_only_when_a_hash_is_given(
    telco_csv_path: Path, tmp_path: Path, settings_home: Path
) -> None:
    tampered = _tampered_copy(telco_csv_path, tmp_path / "telco.csv")
    assert len(load_telco(tampered)) == 7043  # a user's modified copy is allowed...
    with pytest.raises(DataSourceError, match="sha256 mismatch"):
        load_telco(tampered, sha256=TELCO_SHA256)  # ...unless a hash is required
    assert len(load_telco(telco_csv_path, sha256=TELCO_SHA256.upper())) == 7043


def test_settings_path_is_used(
    telco_csv_path: Path, settings_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_TELCO_CSV", str(telco_csv_path))
    get_settings.cache_clear()
    assert len(load_telco()) == 7043


def test_no_source_says_how_to_provide_one(settings_home: Path) -> None:
    with pytest.raises(DataSourceError, match="CHURN_TELCO_CSV") as err:
        load_telco()
    assert "CHURN_TELCO_URL" in str(err.value)


def test_missing_local_file_is_a_clear_error(settings_home: Path, tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="not found"):
        load_telco(tmp_path / "absent.csv")


def test_download_is_verified_and_cached(
    telco_csv_path: Path, settings_home: Path, http_dir: tuple[Path, str]
) -> None:
    root, base = http_dir
    shutil.copyfile(telco_csv_path, root / "telco.csv")
    df = load_telco(url=f"{base}/telco.csv")
    assert len(df) == 7043
    cached = list((settings_home / "downloads").iterdir())
    assert [p.suffix for p in cached] == [".csv"]
    assert file_sha256(cached[0]) == TELCO_SHA256
    # The cache is trusted (by hash) without a request: the file is gone from the server.
    (root / "telco.csv").unlink()
    assert len(load_telco(url=f"{base}/telco.csv")) == 7043


def test_download_with_wrong_hash_fails_and_leaves_nothing(
    telco_csv_path: Path, settings_home: Path, http_dir: tuple[Path, str]
) -> None:
    root, base = http_dir
    _tampered_copy(telco_csv_path, root / "telco.csv")
    with pytest.raises(DataSourceError, match="sha256 mismatch"):
        load_telco(url=f"{base}/telco.csv")
    assert list((settings_home / "downloads").iterdir()) == []


def test_download_url_from_settings(
    telco_csv_path: Path,
    settings_home: Path,
    http_dir: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, base = http_dir
    shutil.copyfile(telco_csv_path, root / "t.csv")
    monkeypatch.setenv("CHURN_TELCO_URL", f"{base}/t.csv")
    get_settings.cache_clear()
    assert int(load_telco()[LABEL].sum()) == 1869


def test_explicit_url_beats_the_configured_path(
    telco_csv_path: Path,
    settings_home: Path,
    http_dir: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, base = http_dir
    shutil.copyfile(telco_csv_path, root / "t.csv")
    monkeypatch.setenv("CHURN_TELCO_CSV", str(settings_home / "not-there.csv"))
    get_settings.cache_clear()
    assert len(load_telco(url=f"{base}/t.csv")) == 7043
    with pytest.raises(DataSourceError, match="not-there"):
        load_telco()


def test_http_error_is_a_data_source_error(settings_home: Path, http_dir: tuple[Path, str]) -> None:
    _, base = http_dir
    with pytest.raises(DataSourceError, match="404"):
        load_telco(url=f"{base}/missing.csv")
    assert list((settings_home / "downloads").iterdir()) == []


def test_blank_total_charges_with_tenure_is_rejected(
    telco_csv_path: Path, tmp_path: Path, settings_home: Path
) -> None:
    raw = pd.read_csv(telco_csv_path, dtype=str, keep_default_na=False)
    raw.loc[0, "TotalCharges"] = " "  # customer 0 has tenure 1: a real defect, not a new customer
    bad = tmp_path / "bad.csv"
    raw.to_csv(bad, index=False)
    with pytest.raises(DataSourceError, match="TotalCharges") as err:
        load_telco(bad)
    assert str(raw.loc[0, "customerID"]) in str(err.value)


def test_non_numeric_value_names_the_column(
    telco_csv_path: Path, tmp_path: Path, settings_home: Path
) -> None:
    raw = pd.read_csv(telco_csv_path, dtype=str, keep_default_na=False)
    raw.loc[3, "MonthlyCharges"] = "forty"
    bad = tmp_path / "bad.csv"
    raw.to_csv(bad, index=False)
    with pytest.raises(DataSourceError, match=r"MonthlyCharges.*forty"):
        load_telco(bad)


def test_missing_column_is_named(telco_csv_path: Path, tmp_path: Path, settings_home: Path) -> None:
    raw = pd.read_csv(telco_csv_path, dtype=str, keep_default_na=False)
    bad = tmp_path / "bad.csv"
    raw.drop(columns=["Contract"]).to_csv(bad, index=False)
    with pytest.raises(DataSourceError, match="Contract"):
        load_telco(bad)
