#!/usr/bin/env python3
"""Benchmark the data steps (clean -> dedupe -> impute) against pandas on the same files.

For each size, generates a log with `pedigree sample-data`, then runs each step
    * as pedigree runs it: `pedigree __builtin KIND` with a request file, and
    * as the same operations in pandas (read, the step's rules, write Parquet),
each in its own process, `--reps` times. Prints the median wall time, rows per second,
the peak resident memory of the process (getrusage of the child), the step's input table
size in Arrow (reported by pedigree as the `input_arrow_bytes` metric) and the ratios
pedigree/pandas. pandas times exclude `import pandas` (~0.5 s); pedigree times are the
whole process. It is a benchmark that prints figures, not a test: it never fails because
a target is missed.

The impute step fills `price` from items.csv then the median, and `category` from
items.csv then the mode: the kNN strategy is left out because pandas has none (scikit-learn
would be a different baseline). The first run creates a venv with pandas and pyarrow
under ~/.cache/pedigree-bench/venv-data.

    cargo build --release
    python3 bench/data_steps.py                          # 1M events, 3 reps
    python3 bench/data_steps.py --sizes 1000000,10000000 --reps 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CLEAN = {
    "read": {},
    "required": ["user_id", "item_id", "event", "ts"],
    "trim": True,
    "lowercase": ["event"],
    "types": {"ts": "timestamp", "price": "float"},
    "allowed": {"event": ["view", "click", "cart", "purchase"]},
    "ranges": {"price": {"min": 0, "max": 10000}, "ts": {"max": "2024-07-01T00:00:00Z"}},
    "outliers": {"column": "user_id", "max_rows": 1000},
}
DEDUPE = {
    "read": {},
    "exact": True,
    "key": ["user_id", "item_id", "event"],
    "keep": "first",
    "window": {"column": "ts", "seconds": 1},
}
IMPUTE = {
    "read": {},
    "side_read": {},
    "columns": {
        "price": [{"lookup": {"key": "item_id"}}, "median"],
        "category": [{"lookup": {"key": "item_id"}}, "mode"],
    },
}

PANDAS = r'''
import sys, time
import pandas as pd
step, src, out = sys.argv[1], sys.argv[2], sys.argv[3]
t0 = time.perf_counter()
if step == "clean":
    df = pd.read_csv(src, dtype=str, keep_default_na=False, na_values=[""])
    for c in df.columns:
        s = df[c].str.strip()
        df[c] = s.where(s != "", None)
    df["event"] = df["event"].str.lower()
    ok = df[["user_id", "item_id", "event", "ts"]].notna().all(axis=1)
    num = pd.to_numeric(df["ts"], errors="coerce")
    iso = pd.to_datetime(df["ts"].where(num.isna()), utc=True, errors="coerce", format="ISO8601")
    ts = iso.fillna(pd.to_datetime(num, unit="s", utc=True))
    ok &= ts.notna() | df["ts"].isna()
    price = pd.to_numeric(df["price"], errors="coerce")
    ok &= price.notna() | df["price"].isna()
    ok &= df["event"].isin(["view", "click", "cart", "purchase"]) | df["event"].isna()
    ok &= ~((price < 0) | (price > 10000))
    ok &= ~(ts > pd.Timestamp("2024-07-01", tz="UTC"))
    df["ts"], df["price"] = ts, price
    counts = df.loc[ok, "user_id"].value_counts()
    ok &= ~df["user_id"].isin(counts[counts > 1000].index)
    df[ok].to_parquet(out, index=False)
    df[~ok].to_csv(out + ".rejects.csv", index=False)
elif step == "dedupe":
    df = pd.read_parquet(src)
    df = df.drop_duplicates(keep="first")
    key = ["user_id", "item_id", "event"]
    # The vectorised form a pandas user writes: drop a row within 1 s of the previous row
    # of its key (chained, where pedigree anchors at the kept row; the same on this data).
    s = df.sort_values(key + ["ts"], kind="stable")
    dup = s.groupby(key, sort=False)["ts"].diff() <= pd.Timedelta(seconds=1)
    df = s[~dup.to_numpy()].sort_index()
    df.to_parquet(out, index=False)
elif step == "impute":
    df = pd.read_parquet(src)
    items = pd.read_csv(sys.argv[4]).drop_duplicates("item_id").set_index("item_id")
    for c in ["price", "category"]:
        df[c] = df[c].fillna(df["item_id"].map(items[c]))
    df["price"] = df["price"].fillna(df["price"].median())
    df["category"] = df["category"].fillna(df["category"].mode().iloc[0])
    df.to_parquet(out, index=False)
print(time.perf_counter() - t0)
'''


def venv_python(venv: Path) -> Path:
    py = venv / "bin" / "python"
    if not py.exists():
        print(f"creating {venv} with pandas and pyarrow (once)...", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "pandas>=2,<3", "pyarrow>=15"], check=True)
    return py


def measure(argv: list[str], env: dict | None = None, cwd: Path | None = None) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (bytes) and stdout of one child process."""
    # Output goes to files, not pipes: a child blocked on a full pipe would never exit.
    with tempfile.TemporaryFile() as fo, tempfile.TemporaryFile() as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, env=env, cwd=cwd, stdout=fo, stderr=fe)
        _, status, rusage = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
        fo.seek(0)
        fe.seek(0)
        out, err = fo.read().decode(), fe.read().decode()
    if p.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({p.returncode}):\n{err}")
    return wall, rusage.ru_maxrss * 1024, out


def pedigree_step(bin_: Path, kind: str, params: dict, inputs: dict, output: Path, work: Path):
    work.mkdir(parents=True, exist_ok=True)
    outputs = {"table": str(output)}
    if kind == "clean":
        outputs["rejects"] = str(output) + ".rejects.csv"
    req = {"step": kind, "inputs": {k: str(v) for k, v in inputs.items()}, "outputs": outputs,
           "params": params, "scratch": str(work)}
    (work / "request.json").write_text(json.dumps(req))
    env = {"PATH": os.environ.get("PATH", ""), "PEDIGREE_REQUEST": str(work / "request.json")}
    wall, rss, _ = measure([str(bin_), "__builtin", kind], env=env, cwd=work)
    metrics = {m["key"]: m["value"] for m in json.loads((work / "metrics.json").read_text())}
    return wall, rss, metrics


def fmt_bytes(b: float) -> str:
    return f"{b / 2**20:,.0f} MiB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1000000")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--pedigree", default=str(REPO / "target/release/pedigree"))
    ap.add_argument("--venv", default=str(Path.home() / ".cache/pedigree-bench/venv-data"))
    ap.add_argument("--workdir", default=None)
    a = ap.parse_args()
    bin_ = Path(a.pedigree).resolve()
    if not bin_.exists():
        sys.exit(f"{bin_} does not exist: run `cargo build --release` first")
    py = venv_python(Path(a.venv))
    rows_out = []
    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        tmp = Path(tmp)
        (tmp / "pandas_steps.py").write_text(PANDAS)
        for n in [int(s) for s in a.sizes.split(",")]:
            data = tmp / f"data-{n}"
            users = max(1000, n // 100)
            subprocess.run([str(bin_), "sample-data", "--users", str(users), "--items", str(max(1000, n // 200)),
                            "--events", str(n), "--seed", "1", "--out", str(data)], check=True, stdout=subprocess.DEVNULL)
            events, items = data / "events.csv", data / "items.csv"
            res: dict[tuple[str, str], list] = {}
            for rep in range(a.reps):
                w = tmp / f"w-{n}-{rep}"
                c, d, i = w / "clean.parquet", w / "dedupe.parquet", w / "impute.parquet"
                for kind, params, inputs, out in [
                    ("clean", CLEAN, {"table": events}, c),
                    ("dedupe", DEDUPE, {"table": c}, d),
                    ("impute", IMPUTE, {"table": d, "side": items}, i),
                ]:
                    wall, rss, m = pedigree_step(bin_, kind, params, inputs, out, w / f"work-{kind}")
                    res.setdefault(("pedigree", kind), []).append((wall, rss, m["rows_in"], m["input_arrow_bytes"]))
                pc, pd_, pi = w / "p-clean.parquet", w / "p-dedupe.parquet", w / "p-impute.parquet"
                for kind, argv in [
                    ("clean", [str(events), str(pc)]),
                    ("dedupe", [str(pc), str(pd_)]),
                    ("impute", [str(pd_), str(pi), str(items)]),
                ]:
                    _, rss, out = measure([str(py), str(tmp / "pandas_steps.py"), kind, *argv])
                    res.setdefault(("pandas", kind), []).append((float(out.strip()), rss))
                print(f"  {n:,} events: rep {rep + 1}/{a.reps} done", file=sys.stderr)
            for kind in ["clean", "dedupe", "impute"]:
                pe, pa = res[("pedigree", kind)], res[("pandas", kind)]
                t_pe = statistics.median(x[0] for x in pe)
                t_pa = statistics.median(x[0] for x in pa)
                m_pe = statistics.median(x[1] for x in pe)
                m_pa = statistics.median(x[1] for x in pa)
                rows, arrow = pe[0][2], pe[0][3]
                rows_out.append((n, kind, rows, t_pe, t_pa, m_pe, m_pa, arrow))
    print()
    print(f"{'events':>11} {'step':<7} {'rows in':>11} {'pedigree':>9} {'rows/s':>11} {'pandas':>9} {'rows/s':>11} "
          f"{'time p/pd':>9} {'peak RSS':>10} {'pandas RSS':>10} {'arrow in':>9} {'RSS/arrow':>9}")
    for n, kind, rows, t_pe, t_pa, m_pe, m_pa, arrow in rows_out:
        print(f"{n:>11,} {kind:<7} {int(rows):>11,} {t_pe:>8.2f}s {rows / t_pe:>11,.0f} {t_pa:>8.2f}s {rows / t_pa:>11,.0f} "
              f"{t_pe / t_pa:>9.2f} {fmt_bytes(m_pe):>10} {fmt_bytes(m_pa):>10} {fmt_bytes(arrow):>9} {m_pe / arrow:>9.2f}")
    print("\nmedians of", a.reps, "runs; `time p/pd` < 1 means pedigree is faster; `RSS/arrow` is pedigree's "
          "peak memory over its input table's Arrow size (target < 3)")


if __name__ == "__main__":
    main()
