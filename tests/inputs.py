"""External test inputs, found in one place: the real Telco CSV and the Seldon CRDs.

Neither is committed (the dataset is IBM's, the CRDs are Seldon's), so a fresh clone
has neither. Every conftest and benchmark asks this module, which looks, in order:

- Telco CSV: CHURN_TELCO_CSV (a path), else CHURN_TELCO_URL (downloaded once into
  the cache, checked against CHURN_TELCO_SHA256), else the project's sibling folder
  `shared/data/` when it exists (our development machines and CI have one).
- Seldon CRDs: CHURN_SELDON_CRDS (a directory of CRD YAML files), else
  `shared/k8s-crds/` beside the checkout, else the cache that `make crds` fills from
  Seldon Core's release tags (v2.9.1, v1.18.2), each file checked against the sha256
  pinned below.

A variable that is set but points at nothing is an error, never a silent fallback.
The cache lives in `.churn/cache/` of the checkout (CHURN_CACHE_DIR overrides);
CHURN_SHARED_DIR overrides where the sibling folder is looked for (tests point it at
an empty folder to play a fresh machine). Run `python tests/inputs.py status` to see
what is found, `python tests/inputs.py crds` to fill the CRD cache.

Nothing is read at import time: every lookup is a function call.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from churn.data.synthetic import generate
from churn.data.telco import DataSourceError, download, to_published
from churn.files import assemble_dir, file_sha256
from churn.settings import PROJECT_ROOT, Settings

TELCO_FILE: Final = "WA_Fn-UseC_-Telco-Customer-Churn.csv"
CRDS_BASE_URL: Final = "https://raw.githubusercontent.com/SeldonIO/seldon-core"
CRDS_CACHE_NAME: Final = "seldon-crds"

# Stand-in for the real CSV: as many synthetic customers as Telco has, one fixed seed.
SYNTHETIC_TELCO_CUSTOMERS: Final = 7043
SYNTHETIC_TELCO_SEED: Final = 7

TELCO_HOW: Final = "set CHURN_TELCO_CSV=/path/to/" + TELCO_FILE + " or CHURN_TELCO_URL=<url>"
CRDS_HOW: Final = "set CHURN_SELDON_CRDS=<dir> or run `make crds`"
TELCO_SKIP: Final = f"needs the real IBM Telco CSV ({TELCO_HOW})"
CRDS_SKIP: Final = f"needs the Seldon Core CRDs ({CRDS_HOW})"


class InputError(RuntimeError):
    """An external input is configured but unusable, or a download failed its checksum."""


@dataclass(frozen=True)
class CrdFile:
    """One pinned upstream CRD file: local name, release tag, path in the repo, sha256."""

    name: str
    tag: str
    path: str
    sha256: str


_V2: Final = "v2.9.1"
_V1: Final = "v1.18.2"
_V2_BASES: Final = "operator/config/crd/bases/mlops.seldon.io_"
SELDON_CRDS: Final[tuple[CrdFile, ...]] = (
    CrdFile(
        "seldon-v2-experiments.yaml",
        _V2,
        _V2_BASES + "experiments.yaml",
        "07e19b06453d857701ad76677cf01723e5d97514b5e60c56d7b359026e7c5597",
    ),
    CrdFile(
        "seldon-v2-models.yaml",
        _V2,
        _V2_BASES + "models.yaml",
        "d44333ad8c4c6d82fe6f5a5b2f69bdee299bf7833ed6b8c594f64a1887a582ec",
    ),
    CrdFile(
        "seldon-v2-pipelines.yaml",
        _V2,
        _V2_BASES + "pipelines.yaml",
        "e7ce70b26435a4bf2616cfca32c15c1b6c489f73fe1715d1eced263093bfe9da",
    ),
    CrdFile(
        "seldon-v2-serverconfigs.yaml",
        _V2,
        _V2_BASES + "serverconfigs.yaml",
        "fc245c89af1049f2c61e96b671bd664fe149cda6cd47754f3f513c82054fe9ef",
    ),
    CrdFile(
        "seldon-v2-servers.yaml",
        _V2,
        _V2_BASES + "servers.yaml",
        "abcf5b44cf068b9c76403befd8004a32571b0f6fb8ada960115bca7d539d4e49",
    ),
    CrdFile(
        "seldon-v1-seldondeployments.yaml",
        _V1,
        "operator/config/crd/bases/machinelearning.seldon.io_seldondeployments.yaml",
        "656f8e6680d77139c517f29de68cd3d56f24df831dd937b43305fe72f5723ffd",
    ),
)


def in_ci() -> bool:
    """True under CI=true: there a missing input fails the run instead of skipping."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def shared_dir() -> Path:
    """The sibling `shared/` folder of our machines (absent on a user's fresh clone)."""
    return Path(os.environ.get("CHURN_SHARED_DIR") or PROJECT_ROOT.parent / "shared")


def cache_dir() -> Path:
    """Where downloaded inputs are kept between runs (never committed)."""
    return Path(os.environ.get("CHURN_CACHE_DIR") or PROJECT_ROOT / ".churn" / "cache")


def find_telco_csv() -> Path | None:
    """The real Telco CSV, or None when no source is configured or at hand.

    A configured source that does not work raises InputError: the user asked for the
    real data, so silently testing without it would be a wrong answer.
    """
    settings = Settings()
    if settings.telco_csv is not None:
        if not settings.telco_csv.is_file():
            raise InputError(f"CHURN_TELCO_CSV={settings.telco_csv} is not a file")
        return settings.telco_csv
    if settings.telco_url:
        digest = settings.telco_sha256.strip().lower()
        dest = cache_dir() / f"telco-{digest[:16]}.csv"
        try:
            return download(settings.telco_url, dest, sha256=digest, hint=TELCO_HOW)
        except DataSourceError as e:
            raise InputError(f"CHURN_TELCO_URL: {e}") from e
    shared = shared_dir() / "data" / TELCO_FILE
    return shared if shared.is_file() else None


def write_synthetic_telco_csv(path: Path) -> Path:
    """Synthetic customers written in the published CSV layout, to stand in for the real
    file: read back through churn.data.telco.load_telco, every code path is the same."""
    frame = generate(SYNTHETIC_TELCO_CUSTOMERS, seed=SYNTHETIC_TELCO_SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    to_published(frame).to_csv(path, index=False)
    return path


def telco_csv_or_synthetic(scratch: Path) -> tuple[Path, bool]:
    """(the real CSV, True) when at hand, else (a synthetic stand-in in `scratch`, False)."""
    real = find_telco_csv()
    if real is not None:
        return real, True
    return write_synthetic_telco_csv(scratch / "synthetic-telco.csv"), False


def benchmark_telco_csv(explicit: Path | None, scratch: Path) -> tuple[Path, str]:
    """The CSV a benchmark reads and a label for its figures: `explicit` (--csv) when
    given, else the real file, else the synthetic stand-in (said so in the label, so
    no synthetic figure is mistaken for a Telco one)."""
    if explicit is not None:
        if not explicit.is_file():
            raise InputError(f"--csv {explicit} is not a file")
        return explicit, f"Telco CSV {explicit.name}"
    path, real = telco_csv_or_synthetic(scratch)
    return path, "Telco CSV" if real else f"synthetic Telco-format CSV (no real file: {TELCO_HOW})"


def find_crd_dir() -> Path | None:
    """A directory holding the Seldon CRD YAML files, or None when there is none."""
    configured = os.environ.get("CHURN_SELDON_CRDS")
    if configured:
        path = Path(configured)
        if not path.is_dir():
            raise InputError(f"CHURN_SELDON_CRDS={path} is not a directory")
        return path
    for candidate in (shared_dir() / "k8s-crds", cache_dir() / CRDS_CACHE_NAME):
        if candidate.is_dir():
            return candidate
    return None


def fetch_crds(
    dest: Path | None = None,
    base_url: str | None = None,
    files: tuple[CrdFile, ...] = SELDON_CRDS,
) -> Path:
    """Download the pinned CRD files into `dest` (default: the cache), all or nothing.

    Every file goes into a temporary sibling folder and is checked against its pinned
    sha256; only when all match is the folder renamed into place, so a wrong checksum
    or a dead link leaves no partial cache that a later run would trust. The base URL
    comes from CHURN_SELDON_CRDS_BASE_URL (file:// works: mirrors, air-gapped sites).
    """
    target = dest if dest is not None else cache_dir() / CRDS_CACHE_NAME
    base = (base_url or os.environ.get("CHURN_SELDON_CRDS_BASE_URL") or CRDS_BASE_URL).rstrip("/")
    if _complete(target, files):
        return target

    def fill(staging: Path) -> None:
        for crd in files:
            url = f"{base}/{crd.tag}/{crd.path}"
            try:
                download(url, staging / crd.name, sha256=crd.sha256, hint=CRDS_HOW)
            except DataSourceError as e:
                raise InputError(f"{crd.name} from {url}: {e}") from e

    assemble_dir(target, fill, replace=True)
    return target


def _complete(folder: Path, files: tuple[CrdFile, ...]) -> bool:
    """Whether `folder` already holds every pinned file with its pinned hash."""
    return folder.is_dir() and all(
        (folder / f.name).is_file() and file_sha256(folder / f.name) == f.sha256 for f in files
    )


def _status() -> str:
    """One line per input: where it was found, or how to provide it."""
    telco, crds = find_telco_csv(), find_crd_dir()
    return "\n".join(
        [
            f"Telco CSV:   {telco if telco else 'not found (' + TELCO_HOW + ')'}",
            f"Seldon CRDs: {crds if crds else 'not found (' + CRDS_HOW + ')'}",
        ]
    )


def main(argv: list[str]) -> int:
    """`status`: what the tests will find; `crds`: fill the CRD cache (make crds)."""
    command = argv[0] if argv else "status"
    try:
        if command == "crds":
            print(f"Seldon CRDs ready in {fetch_crds()}")
        elif command == "status":
            print(_status())
        else:
            print(f"usage: {Path(__file__).name} [status|crds]", file=sys.stderr)
            return 2
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
