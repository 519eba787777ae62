#!/bin/sh
# Extract MovieLens-100k in RecBole atomic format (ml-100k.inter, ml-100k.item) from the
# recbole==1.2.1 wheel on PyPI into workflows/data/ml-100k/. Run once; nothing downloads
# at workflow run time. Tests and benchmarks that need the data skip without it.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/workflows/data/ml-100k"
cache="${PEDIGREE_BENCH_CACHE:-$HOME/.cache/pedigree-bench}/wheels"
if [ -f "$dest/ml-100k.inter" ] && [ -f "$dest/ml-100k.item" ]; then
    echo "already present: $dest"
    exit 0
fi
mkdir -p "$cache" "$dest"
wheel=$(ls "$cache"/recbole-1.2.1-*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
    python3 -m pip download --no-deps --quiet --dest "$cache" recbole==1.2.1
    wheel=$(ls "$cache"/recbole-1.2.1-*.whl | head -n 1)
fi
python3 - "$wheel" "$dest" <<'PY'
import sys, zipfile, pathlib
wheel, dest = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    for name in ("ml-100k.inter", "ml-100k.item"):
        data = z.read(f"recbole/dataset_example/ml-100k/{name}")
        (dest / name).write_bytes(data)
        print(f"{dest / name}: {len(data)} bytes")
PY
