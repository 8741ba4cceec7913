"""Load and clean the IBM Telco Customer Churn CSV.

The CSV is never committed. `load_telco` finds it, in order: an explicit `path`,
an explicit `url`, the `CHURN_TELCO_CSV` setting, or a download from `CHURN_TELCO_URL`. A
download is always verified against a sha256 (`CHURN_TELCO_SHA256` by default), so
a truncated or tampered file never reaches training. A local file is verified only
when a hash is passed explicitly: users may point at their own modified copy.

Cleaning turns the published CamelCase columns into the project's snake_case names
(churn.schema.TELCO_COLUMNS) with one dtype per schema kind, and fixes the only
defect of the file: 11 blank TotalCharges (see `clean_telco`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Final
from urllib.parse import unquote, urlparse

import pandas as pd
import requests

from churn.files import file_sha256
from churn.schema import ENTITY_KEY, FEATURES, LABEL, TELCO_COLUMNS, Kind, feature_names
from churn.settings import get_settings

_CHUNK: Final = 1 << 20
_DOWNLOAD_TIMEOUT_S: Final = 60.0
_HOW_TO_PROVIDE: Final = (
    "Provide the IBM Telco Customer Churn CSV (WA_Fn-UseC_-Telco-Customer-Churn.csv): "
    "pass path=..., or set CHURN_TELCO_CSV=/path/to/the.csv, or set CHURN_TELCO_URL to a "
    "URL it can be downloaded from (verified against CHURN_TELCO_SHA256)."
)


class DataSourceError(RuntimeError):
    """The raw data cannot be found, downloaded, verified or parsed."""


def verify_sha256(path: Path, expected: str, *, hint: str = _HOW_TO_PROVIDE) -> None:
    """Raise DataSourceError unless `path` hashes to `expected` (hex, any case)."""
    actual = file_sha256(path)
    if actual != expected.strip().lower():
        raise DataSourceError(
            f"sha256 mismatch for {path}: expected {expected}, got {actual}. The file is "
            f"corrupt, truncated or a different version. {hint}".rstrip()
        )


def download(url: str, dest: Path, *, sha256: str, hint: str = _HOW_TO_PROVIDE) -> Path:
    """Download `url` (http, https or file) to `dest`, verified against `sha256`, atomically.

    The body is streamed to a temporary file next to `dest`, hashed, and renamed
    over `dest` only when the hash matches, so an interrupted or wrong download never
    leaves a file that a later run would trust. An existing `dest` with the right
    hash is reused without a request. `hint` ends every error: how to provide the file.
    """
    if dest.is_file() and file_sha256(dest) == sha256.strip().lower():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            _fetch(url, out, hint)
        actual = file_sha256(tmp)
        if actual != sha256.strip().lower():
            raise DataSourceError(
                f"sha256 mismatch for {dest.name} downloaded from {url}: expected {sha256}, "
                f"got {actual}. The file is corrupt, truncated or a different version. "
                f"{hint}".rstrip()
            )
        tmp.replace(dest)  # atomic: a reader never sees a partial download
    finally:
        tmp.unlink(missing_ok=True)
    return dest


def _fetch(url: str, out: BinaryIO, hint: str) -> None:
    """Stream `url` into `out`: http(s) through requests, file:// from local disk.

    file:// lets air-gapped users (and the tests) mirror a download locally and still
    get the same checksum and atomic-rename guarantees as a real download.
    """
    parsed = urlparse(url)
    if parsed.scheme == "file":
        try:
            with Path(unquote(parsed.path)).open("rb") as source:
                shutil.copyfileobj(source, out, _CHUNK)
        except OSError as e:
            raise DataSourceError(f"download of {url} failed: {e}. {hint}".rstrip()) from e
        return
    try:
        with requests.get(url, stream=True, timeout=_DOWNLOAD_TIMEOUT_S) as response:
            response.raise_for_status()
            for chunk in response.iter_content(chunk_size=_CHUNK):
                out.write(chunk)
    except requests.RequestException as e:
        raise DataSourceError(f"download of {url} failed: {e}. {hint}".rstrip()) from e


def _resolve_source(path: Path | None, url: str | None, sha256: str | None) -> Path:
    """The local CSV to read: explicit arguments first (path, then url), then settings.

    An explicit `url` beats a CHURN_TELCO_CSV set in the environment: a caller who
    names a source means that source.
    """
    settings = get_settings()
    local = path if path is not None else (settings.telco_csv if url is None else None)
    if local is not None:
        if not local.is_file():
            raise DataSourceError(f"Telco CSV not found at {local}. {_HOW_TO_PROVIDE}")
        if sha256 is not None:
            verify_sha256(local, sha256)
        return local
    source_url = url if url is not None else settings.telco_url
    if not source_url:
        raise DataSourceError(f"no Telco CSV configured. {_HOW_TO_PROVIDE}")
    expected = sha256 if sha256 is not None else settings.telco_sha256
    # Named by content hash: a cache file is trusted only for the hash it was checked against.
    dest = settings.home / "downloads" / f"telco-{expected.strip().lower()[:16]}.csv"
    return download(source_url, dest, sha256=expected)


def load_telco(
    path: Path | None = None, url: str | None = None, *, sha256: str | None = None
) -> pd.DataFrame:
    """The cleaned Telco data: customer_id, every schema feature in order, churn (0/1).

    Source order: `path`, `url`, settings.telco_csv (CHURN_TELCO_CSV), then
    settings.telco_url (CHURN_TELCO_URL); downloads are cached under
    settings.home/"downloads". Downloads
    are verified against `sha256` (default settings.telco_sha256); a local file only
    when `sha256` is given. No timestamps are added: see churn.data.timestamps.
    """
    csv = _resolve_source(path, url, sha256)
    # Everything as text first: customer ids must stay strings, and blank
    # TotalCharges must be seen as blanks, not silently parsed as NaN.
    try:
        raw = pd.read_csv(csv, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise DataSourceError(f"{csv} is not a readable CSV: {e}") from e
    return clean_telco(raw, source=str(csv))


def _to_number(raw: pd.DataFrame, column: str, source: str) -> pd.Series:
    """A text column parsed as numbers; DataSourceError names the column and bad values."""
    values = pd.to_numeric(raw[column].str.strip(), errors="coerce")
    bad = raw.loc[values.isna(), column]
    if len(bad):
        raise DataSourceError(
            f"{source}: column {column!r} has {len(bad)} non-numeric values, "
            f"e.g. {bad.head(5).tolist()}"
        )
    return values


def _to_int(raw: pd.DataFrame, column: str, source: str) -> pd.Series:
    """A text column parsed as int64; fractional values are an error, never truncated."""
    values = _to_number(raw, column, source)
    fractional = raw.loc[values != values.round(), column]
    if len(fractional):
        raise DataSourceError(
            f"{source}: column {column!r} must hold whole numbers, "
            f"e.g. {fractional.head(5).tolist()}"
        )
    return values.astype("int64")


def _total_charges(raw: pd.DataFrame, source: str) -> pd.Series:
    """TotalCharges as float64, with the documented fix for blanks.

    Rule: a customer in their first month (tenure 0) has not been billed yet, so a
    blank TotalCharges means 0.0. The published file has exactly 11 such rows, all
    with tenure 0. A blank for a customer with tenure > 0 would be a real defect
    and is rejected rather than guessed.
    """
    text = raw["TotalCharges"].str.strip()
    blank = text == ""
    not_first_month = blank & (raw["tenure"].str.strip() != "0")
    if not_first_month.any():
        ids = raw.loc[not_first_month, "customerID"].head(5).tolist()
        raise DataSourceError(
            f"{source}: column 'TotalCharges' is blank for {int(not_first_month.sum())} "
            f"customers with tenure > 0 (e.g. {ids}); only first-month customers may be unbilled"
        )
    # First-month customers have not been billed yet: their total is 0.0.
    filled = raw[["TotalCharges"]].assign(TotalCharges=text.mask(blank, "0"))
    return _to_number(filled, "TotalCharges", source).astype("float64")


def _churn_label(raw: pd.DataFrame, source: str) -> pd.Series:
    """Churn Yes/No as int64 1/0; any other value is an error naming it."""
    text = raw["Churn"].str.strip()
    unknown = ~text.isin(["Yes", "No"])
    if unknown.any():
        raise DataSourceError(
            f"{source}: column 'Churn' must be Yes/No, found {sorted(set(text[unknown]))[:5]}"
        )
    return (text == "Yes").astype("int64")


def clean_telco(raw: pd.DataFrame, *, source: str = "Telco CSV") -> pd.DataFrame:
    """Published Telco columns (all text) -> the project's typed, snake_case frame.

    Dtypes follow churn.schema kinds: categories as Python str (object dtype),
    ints as int64, floats as float64; customer_id stays a str entity key and the
    label `churn` is int64 0/1. Column order: customer_id, feature_names(), churn.
    """
    missing = [c for c in TELCO_COLUMNS if c not in raw.columns]
    if missing:
        raise DataSourceError(f"{source}: missing Telco columns {missing}")
    renamed = {v: k for k, v in TELCO_COLUMNS.items()}
    out: dict[str, pd.Series] = {ENTITY_KEY: raw[renamed[ENTITY_KEY]].str.strip().astype(object)}
    for feat in FEATURES:
        column = renamed[feat.name]
        if feat.name == "total_charges":
            out[feat.name] = _total_charges(raw, source)
        elif feat.kind is Kind.CATEGORY:
            out[feat.name] = raw[column].str.strip().astype(object)
        elif feat.kind is Kind.INT:
            out[feat.name] = _to_int(raw, column, source)
        else:
            out[feat.name] = _to_number(raw, column, source).astype("float64")
    out[LABEL] = _churn_label(raw, source)
    frame = pd.DataFrame(out)
    return frame[[ENTITY_KEY, *feature_names(), LABEL]].reset_index(drop=True)


def _exact_text(value: float) -> str:
    """The shortest text that parses back to exactly `value` (a round trip loses nothing)."""
    return repr(float(value))


def to_published(frame: pd.DataFrame) -> pd.DataFrame:
    """The project's typed frame -> the published CSV's layout (all text), the inverse
    of `clean_telco`.

    Why: the synthetic generator's customers can then be written as a Telco-format
    CSV and read back through the very loader the real file goes through (tests and
    demos without the dataset exercise the same code path). First-month customers
    (tenure 0) get the published file's blank TotalCharges, and Churn is Yes/No.
    Extra columns (timestamps) are dropped.
    """
    out: dict[str, pd.Series] = {}
    for published, name in TELCO_COLUMNS.items():
        column = frame[name]
        if name == LABEL:
            out[published] = column.map({1: "Yes", 0: "No"})
        elif name == "total_charges":
            text = column.map(_exact_text)
            out[published] = text.mask(frame["tenure"] == 0, " ")
        elif pd.api.types.is_float_dtype(column):
            out[published] = column.map(_exact_text)
        else:
            out[published] = column.astype(str)
    return pd.DataFrame(out).reset_index(drop=True)
