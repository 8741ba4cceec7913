#!/usr/bin/env bash
# Fetch every wheel the images install (docker/requirements.build.txt and
# docker/requirements.runtime.txt; the MLServer image's set is a subset) into a
# wheelhouse, default build/wheelhouse. pip checks each file against the sha256 sums
# of those files (--require-hashes) and runs with this machine's own configuration
# (index, proxy, certificate), which therefore never reaches an image: the builds
# bind-mount the wheelhouse and install with --no-index. Linux x86_64 CPython 3.11
# wheels whatever machine fetches them; files already present are checked, not
# downloaded again. Used by `make wheelhouse` / `make images` and by cd.yml.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${1:-build/wheelhouse}"
python="${PYTHON:-python3}"
platforms=()
for minor in $(seq 28 -1 5); do
  platforms+=(--platform "manylinux_2_${minor}_x86_64")
done
platforms+=(--platform manylinux2014_x86_64 --platform manylinux2010_x86_64 --platform manylinux1_x86_64)
mkdir -p "$dest"
"$python" -m pip download --quiet --no-deps --only-binary=:all: --require-hashes \
  --dest "$dest" --python-version 3.11 --implementation cp --abi cp311 "${platforms[@]}" \
  -r docker/requirements.build.txt -r docker/requirements.runtime.txt
echo "wheelhouse: $(find "$dest" -maxdepth 1 -name '*.whl' | wc -l) wheels in $dest"
