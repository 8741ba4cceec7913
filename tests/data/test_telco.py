"""The Telco loader: cleaning, sources and sha256 checks, and the real file's facts.

Source and cleaning tests run on `telco_csv` (the real file, or synthetic customers
in the published layout on a fresh clone); the published file's own facts (7043
rows, 1869 churners, 11 blank TotalCharges, its sha256) need `real_telco_csv`.
Downloads go through a real HTTP server on a local socket (no mocks), serving
files from tmp_path, and through file:// URLs.
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

from churn.data.synthetic import generate
from churn.data.telco import DataSourceError, load_telco, to_published
from churn.files import file_sha256
from churn.schema import ENTITY_KEY, FEATURES, LABEL, TELCO_COLUMNS, Kind, feature_names
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


def _rows(csv: Path) -> int:
    """Data rows of a CSV, counted from the file itself (not through the loader)."""
    return len(pd.read_csv(csv, dtype=str, keep_default_na=False))


def test_real_csv_counts(real_telco_csv: Path, real_telco_df: pd.DataFrame) -> None:
    assert len(real_telco_df) == 7043
    assert int(real_telco_df[LABEL].sum()) == 1869
    assert real_telco_df[ENTITY_KEY].is_unique
    raw = pd.read_csv(real_telco_csv, dtype=str, keep_default_na=False)
    assert int((raw["TotalCharges"].str.strip() == "").sum()) == 11


def test_every_row_and_label_survives_loading(telco_csv: Path, telco_df: pd.DataFrame) -> None:
    raw = pd.read_csv(telco_csv, dtype=str, keep_default_na=False)
    assert len(telco_df) == len(raw)
    assert int(telco_df[LABEL].sum()) == int((raw["Churn"] == "Yes").sum())
    assert telco_df[ENTITY_KEY].tolist() == raw["customerID"].str.strip().tolist()


def test_blank_total_charges_become_zero_for_first_month(
    telco_csv: Path, telco_df: pd.DataFrame
) -> None:
    raw = pd.read_csv(telco_csv, dtype=str, keep_default_na=False)
    blank_ids = raw.loc[raw["TotalCharges"].str.strip() == "", "customerID"]
    assert len(blank_ids) > 0  # the real file has 11; the synthetic stand-in has some too
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


def test_published_file_matches_the_configured_hash(real_telco_csv: Path) -> None:
    assert file_sha256(real_telco_csv) == TELCO_SHA256
    assert get_settings().telco_sha256 == TELCO_SHA256


def test_local_path_verified_only_when_a_hash_is_given(
    telco_csv: Path, tmp_path: Path, settings_home: Path
) -> None:
    digest = file_sha256(telco_csv)
    tampered = _tampered_copy(telco_csv, tmp_path / "telco.csv")
    assert len(load_telco(tampered)) == _rows(telco_csv)  # a user's modified copy is allowed...
    with pytest.raises(DataSourceError, match="sha256 mismatch"):
        load_telco(tampered, sha256=digest)  # ...unless a hash is required
    assert len(load_telco(telco_csv, sha256=digest.upper())) == _rows(telco_csv)


def test_settings_path_is_used(
    telco_csv: Path, settings_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHURN_TELCO_CSV", str(telco_csv))
    get_settings.cache_clear()
    assert len(load_telco()) == _rows(telco_csv)


def test_no_source_says_how_to_provide_one(settings_home: Path) -> None:
    with pytest.raises(DataSourceError, match="CHURN_TELCO_CSV") as err:
        load_telco()
    assert "CHURN_TELCO_URL" in str(err.value)


def test_missing_local_file_is_a_clear_error(settings_home: Path, tmp_path: Path) -> None:
    with pytest.raises(DataSourceError, match="not found"):
        load_telco(tmp_path / "absent.csv")


def test_download_is_verified_and_cached(
    telco_csv: Path, settings_home: Path, http_dir: tuple[Path, str]
) -> None:
    root, base = http_dir
    digest = file_sha256(telco_csv)
    shutil.copyfile(telco_csv, root / "telco.csv")
    df = load_telco(url=f"{base}/telco.csv", sha256=digest)
    assert len(df) == _rows(telco_csv)
    cached = list((settings_home / "downloads").iterdir())
    assert [p.suffix for p in cached] == [".csv"]
    assert file_sha256(cached[0]) == digest
    # The cache is trusted (by hash) without a request: the file is gone from the server.
    (root / "telco.csv").unlink()
    assert len(load_telco(url=f"{base}/telco.csv", sha256=digest)) == _rows(telco_csv)


def test_file_url_downloads_the_same_way(
    telco_csv: Path, settings_home: Path, tmp_path: Path
) -> None:
    digest = file_sha256(telco_csv)
    df = load_telco(url=telco_csv.resolve().as_uri(), sha256=digest)
    assert len(df) == _rows(telco_csv)
    with pytest.raises(DataSourceError, match=r"absent\.csv"):  # other hash: nothing cached
        load_telco(url=(tmp_path / "absent.csv").as_uri(), sha256="0" * 64)
    assert [p.name for p in (settings_home / "downloads").iterdir()] == [f"telco-{digest[:16]}.csv"]


def test_download_with_wrong_hash_fails_and_leaves_nothing(
    telco_csv: Path, settings_home: Path, http_dir: tuple[Path, str]
) -> None:
    root, base = http_dir
    digest = file_sha256(telco_csv)
    _tampered_copy(telco_csv, root / "telco.csv")
    with pytest.raises(DataSourceError, match="sha256 mismatch"):
        load_telco(url=f"{base}/telco.csv", sha256=digest)
    assert list((settings_home / "downloads").iterdir()) == []


def test_download_url_from_settings(
    telco_csv: Path,
    settings_home: Path,
    http_dir: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, base = http_dir
    shutil.copyfile(telco_csv, root / "t.csv")
    monkeypatch.setenv("CHURN_TELCO_URL", f"{base}/t.csv")
    monkeypatch.setenv("CHURN_TELCO_SHA256", file_sha256(telco_csv))
    get_settings.cache_clear()
    raw = pd.read_csv(telco_csv, dtype=str, keep_default_na=False)
    assert int(load_telco()[LABEL].sum()) == int((raw["Churn"] == "Yes").sum())


def test_explicit_url_beats_the_configured_path(
    telco_csv: Path,
    settings_home: Path,
    http_dir: tuple[Path, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root, base = http_dir
    shutil.copyfile(telco_csv, root / "t.csv")
    monkeypatch.setenv("CHURN_TELCO_CSV", str(settings_home / "not-there.csv"))
    get_settings.cache_clear()
    url = f"{base}/t.csv"
    assert len(load_telco(url=url, sha256=file_sha256(telco_csv))) == _rows(telco_csv)
    with pytest.raises(DataSourceError, match="not-there"):
        load_telco()


def test_http_error_is_a_data_source_error(settings_home: Path, http_dir: tuple[Path, str]) -> None:
    _, base = http_dir
    with pytest.raises(DataSourceError, match="404"):
        load_telco(url=f"{base}/missing.csv")
    assert list((settings_home / "downloads").iterdir()) == []


def test_blank_total_charges_with_tenure_is_rejected(
    telco_csv: Path, tmp_path: Path, settings_home: Path
) -> None:
    raw = pd.read_csv(telco_csv, dtype=str, keep_default_na=False)
    row = raw.index[raw["tenure"].str.strip() != "0"][0]
    raw.loc[row, "TotalCharges"] = " "  # tenure > 0: a real defect, not a new customer
    bad = tmp_path / "bad.csv"
    raw.to_csv(bad, index=False)
    with pytest.raises(DataSourceError, match="TotalCharges") as err:
        load_telco(bad)
    assert str(raw.loc[row, "customerID"]) in str(err.value)


def test_non_numeric_value_names_the_column(
    telco_csv: Path, tmp_path: Path, settings_home: Path
) -> None:
    raw = pd.read_csv(telco_csv, dtype=str, keep_default_na=False)
    raw.loc[3, "MonthlyCharges"] = "forty"
    bad = tmp_path / "bad.csv"
    raw.to_csv(bad, index=False)
    with pytest.raises(DataSourceError, match=r"MonthlyCharges.*forty"):
        load_telco(bad)


def test_missing_column_is_named(telco_csv: Path, tmp_path: Path, settings_home: Path) -> None:
    raw = pd.read_csv(telco_csv, dtype=str, keep_default_na=False)
    bad = tmp_path / "bad.csv"
    raw.drop(columns=["Contract"]).to_csv(bad, index=False)
    with pytest.raises(DataSourceError, match="Contract"):
        load_telco(bad)


def test_synthetic_customers_round_trip_through_the_published_layout(tmp_path: Path) -> None:
    frame = generate(500, seed=3)
    csv = tmp_path / "synthetic.csv"
    to_published(frame).to_csv(csv, index=False)
    raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    assert list(raw.columns) == list(TELCO_COLUMNS)
    assert set(raw["Churn"]) == {"Yes", "No"}
    assert (raw.loc[raw["tenure"] == "0", "TotalCharges"] == " ").all()
    loaded = load_telco(csv)
    expected = frame[loaded.columns].reset_index(drop=True)
    pd.testing.assert_frame_equal(loaded, expected)  # exact: no value is rounded on the way
