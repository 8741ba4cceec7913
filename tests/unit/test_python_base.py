"""Which base the images build FROM (deployment.containers.python_image), one function.

A unit test of a single function: the engine is a recorder (no images are built).
Where the official Python image is present or pullable, the images get it plus
libgomp1 from docker/base.Dockerfile, built once; where it is not, the debootstrapped
stand-in (which carries libgomp1) is used as it is.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

from deployment import containers


@dataclass
class RecordingEngine:
    present: set[str]
    pullable: bool
    calls: list[tuple[str, ...]] = field(default_factory=list)

    def image_exists(self, ref: str) -> bool:
        return ref in self.present

    def run(
        self, *args: str, check: bool = True, **_kw: object
    ) -> subprocess.CompletedProcess[str]:
        self.calls.append(args)
        if args[0] == "build":
            self.present.add(args[args.index("-t") + 1])
        ok = args[0] != "pull" or self.pullable
        return subprocess.CompletedProcess(list(args), 0 if ok else 1, "", "")


def test_official_base_gets_libgomp1_once() -> None:
    engine = RecordingEngine(present={containers.OFFICIAL_BASE}, pullable=False)
    assert containers.python_image(engine) == containers.OFFICIAL_WITH_LIBS  # type: ignore[arg-type]
    (build,) = [c for c in engine.calls if c[0] == "build"]
    assert build[build.index("-f") + 1].endswith("docker/base.Dockerfile")
    assert f"OFFICIAL={containers.OFFICIAL_BASE}" in build
    assert containers.python_image(engine) == containers.OFFICIAL_WITH_LIBS  # type: ignore[arg-type]
    assert [c for c in engine.calls if c[0] == "build"] == [build]  # not rebuilt


def test_the_stand_in_is_used_as_it_is() -> None:
    engine = RecordingEngine(present={containers.LOCAL_BASE}, pullable=False)
    assert containers.python_image(engine) == containers.LOCAL_BASE  # type: ignore[arg-type]
    assert not [c for c in engine.calls if c[0] == "build"]


def test_base_dockerfile_installs_libgomp1_on_the_official_image() -> None:
    text = (containers.DOCKER_DIR / "base.Dockerfile").read_text()
    assert f"ARG OFFICIAL={containers.OFFICIAL_BASE}" in text
    assert "install -y --no-install-recommends libgomp1" in text
    assert "libgomp1" in containers.BASE_PACKAGES  # the stand-in's packages
