#!/usr/bin/env python3
"""Orchestrator-overhead benchmark: pedigree against DVC and Snakemake on one machine.

Builds the DVC and Snakemake peer projects with the reference `make_projects.py`, builds
equivalent pedigree workspaces, and times whole processes (`time.perf_counter` around
`subprocess.run`) for cold runs, no-op reruns and a one-shard change. Prints medians with
min/max, the ratio peer/pedigree, and pedigree's figures against the project's targets.
Every timed run is checked: exit code 0, and exactly the expected steps ran (pedigree's
`--json` report, DVC's "Running stage" lines, Snakemake's job headers).

Python 3.11 standard library only; DVC and Snakemake are installed into a cached venv.
See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_REFERENCE = REPO.parent / "shared" / "reference"
DEFAULT_VENV = Path.home() / ".cache" / "pedigree-bench" / "venv"
DEFAULT_PEDIGREE = REPO / "target" / "release" / "pedigree"

STAGES = ["clean", "dedupe", "impute", "graph_build", "train", "evaluate", "publish"]
NWIDE = 200  # shards in the wide workflow (plus one join step)
CHAINS, DEPTH = 200, 5  # the 1000-step workflow: 200 shards, each through a chain of 5 steps
CHANGED = 7  # the shard changed in the one-input scenario
PEEK_BYTES = 4096  # what the 1 GiB workflow's step reads of its input

# (key, label) in print order. Tools: pedigree, dvc, snakemake; "peer cmds" for peers' direct work.
SCENARIOS = [
    ("noop_linear", "no-op rerun, linear (7 steps)"),
    ("noop_wide", "no-op rerun, wide (201 steps)"),
    ("noop_1000", "no-op rerun, 1000 steps"),
    ("change_wide", "one shard changed, wide (2 of 201 rerun)"),
    ("noop_big", "no-op rerun, {gib:g} GiB input (1 step)"),
    ("cold_linear", "cold run, linear (7 steps)"),
    ("cold_wide", "cold run, wide (201 steps)"),
    ("cold_1000", "cold run, 1000 steps"),
    ("work_linear", "step commands alone, linear (7)"),
    ("work_wide", "step commands alone, wide (201)"),
    ("work_1000", "step commands alone, 1000 steps"),
    ("work_change", "step commands alone, 1 shard + join"),
]
TOOLS = ["pedigree", "baseline", "dvc", "snakemake", "peer cmds"]


class BenchError(Exception):
    pass


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def tail(text: str, n: int = 25) -> str:
    return "\n".join(text.splitlines()[-n:])


def run(cmd, cwd, env, shell=False) -> tuple[float, str, str]:
    """Run one whole process; return (wall seconds, stdout, stderr). Raise on a non-zero exit."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, cwd=cwd, env=env, shell=shell, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except OSError as e:
        raise BenchError(f"cannot start {cmd!r} in {cwd}: {e}")
    dt = time.perf_counter() - t0
    out = p.stdout.decode(errors="replace")
    err = p.stderr.decode(errors="replace")
    if p.returncode != 0:
        shown = cmd if isinstance(cmd, str) else " ".join(map(str, cmd))
        raise BenchError(f"`{shown}` in {cwd} exited with {p.returncode}\n"
                         f"--- stdout (tail) ---\n{tail(out)}\n--- stderr (tail) ---\n{tail(err)}")
    return dt, out, err


def expect(label: str, ran: set[str], want: set[str], out: str) -> None:
    if ran != want:
        extra, missing = sorted(ran - want), sorted(want - ran)
        raise BenchError(f"{label}: unexpected set of executed steps "
                         f"(ran {len(ran)}, expected {len(want)}; "
                         f"unexpected {extra[:10]}, missing {missing[:10]})\n"
                         f"--- output (tail) ---\n{tail(out)}")


def write(path: Path, text: str, mode: int | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mode is not None:
        path.chmod(mode)


class Results:
    def __init__(self) -> None:
        self.times: dict[str, dict[str, list[float]]] = {}

    def add(self, scenario: str, tool: str, seconds: list[float]) -> None:
        self.times.setdefault(scenario, {})[tool] = seconds

    def median(self, scenario: str, tool: str) -> float | None:
        s = self.times.get(scenario, {}).get(tool)
        return statistics.median(s) if s else None


def measure(label: str, reps: int, once, prep=None) -> list[float]:
    """Call prep(i) (untimed) then once(i) -> seconds, reps times."""
    out = []
    for i in range(reps):
        if prep:
            prep(i)
        dt = once(i)
        out.append(dt)
        log(f"{label}: rep {i + 1}/{reps}: {dt * 1000:.1f} ms")
    return out


# ----------------------------------------------------------------------------------------------
# Input data (identical bytes to the peer projects: same generator, same sharding)

def make_data(reference: Path, dest: Path) -> tuple[Path, list[str]]:
    raw = dest / "raw.csv"
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, str(reference / "gen_input.py"), str(raw)], check=True)
    lines = raw.read_text().splitlines(True)
    hdr, body = lines[0], lines[1:]
    per = len(body) // NWIDE
    shards = [hdr + "".join(body[i * per:(i + 1) * per]) for i in range(NWIDE)]
    return raw, shards


def changed_shard(original: str, rep: int) -> str:
    """The one-input change for rep `rep`: the original shard plus one line never seen before,
    so every rep is the same size of change and no cache (pedigree's or DVC's run cache) can
    answer it."""
    return original + f"4242,{rep:05d},buy,9.99,{1900000000 + rep}\n"


# ----------------------------------------------------------------------------------------------
# pedigree

STAGE_PLUGIN = """\
description: Copy the input file to the output (orchestrator-overhead benchmark stage)
command: [sh, "${plugin}/stage.sh"]
inputs:
  src: {}
outputs:
  out: { file: out.csv, kind: table, media_type: text/csv }
params:
  tag: { type: string, default: "" }
"""
STAGE_SH = 'exec cp "$PEDIGREE_INPUT_SRC" "$PEDIGREE_OUTPUT_OUT"\n'

PEEK_PLUGIN = f"""\
description: Read the first {PEEK_BYTES} bytes of a (large) input (benchmark stage)
command: [sh, "${{plugin}}/peek.sh"]
inputs:
  src: {{}}
outputs:
  out: {{ file: head.bin, kind: file, media_type: application/octet-stream }}
"""
PEEK_SH = f'exec head -c {PEEK_BYTES} "$PEDIGREE_INPUT_SRC" > "$PEDIGREE_OUTPUT_OUT"\n'


def join_slots() -> list[str]:
    return [f"s{i:03d}" for i in range(NWIDE)]


def join_plugin() -> tuple[str, str]:
    slots = join_slots()
    yaml = ("description: Concatenate the 200 shard outputs in order (benchmark join)\n"
            'command: [sh, "${plugin}/join.sh"]\n'
            "inputs:\n" + "".join(f"  {s}: {{}}\n" for s in slots) +
            "outputs:\n  out: { file: joined.csv, kind: table, media_type: text/csv }\n")
    sh = "exec cat " + " ".join(f'"$PEDIGREE_INPUT_{s.upper()}"' for s in slots) \
        + ' > "$PEDIGREE_OUTPUT_OUT"\n'
    return yaml, sh


def add_stage_plugin(ws: Path) -> None:
    write(ws / "plugins/stage/plugin.yaml", STAGE_PLUGIN)
    write(ws / "plugins/stage/stage.sh", STAGE_SH, 0o755)


def stage_step(name: str, src: str) -> str:
    # `tag` makes every step's key distinct: the stage is a plain copy, so without it two
    # steps of a chain would share plugin, params and input content, i.e. one key, and the
    # second would be a cache hit even in a cold run.
    return f"  {name}:\n    plugin: stage\n    inputs: {{ src: {src} }}\n    with: {{ tag: {name} }}\n"


def build_linear(ws: Path, raw: Path) -> None:
    add_stage_plugin(ws)
    (ws / "data").mkdir(parents=True, exist_ok=True)
    shutil.copy(raw, ws / "data/raw.csv")
    y = ("name: bench-linear\ndescription: 7 copy steps over a ~1 MB CSV\n"
         "inputs:\n  raw: ../data/raw.csv\nsteps:\n")
    prev = "inputs.raw"
    for s in STAGES:
        y += stage_step(s, prev)
        prev = f"{s}.out"
    write(ws / "workflows/linear.yaml", y)


def write_shards(ws: Path, shards: list[str]) -> None:
    for i, text in enumerate(shards):
        write(ws / f"data/shard_{i:03d}.csv", text)


def shard_inputs() -> str:
    return "inputs:\n" + "".join(f"  shard_{i:03d}: ../data/shard_{i:03d}.csv\n" for i in range(NWIDE))


def build_wide(ws: Path, shards: list[str]) -> None:
    add_stage_plugin(ws)
    yaml, sh = join_plugin()
    write(ws / "plugins/join/plugin.yaml", yaml)
    write(ws / "plugins/join/join.sh", sh, 0o755)
    write_shards(ws, shards)
    y = "name: bench-wide\ndescription: 200 independent copy steps over ~5 KB shards + one join\n"
    y += shard_inputs() + "steps:\n"
    for s in join_slots():
        y += stage_step(s, f"inputs.shard_{s[1:]}")
    y += "  join:\n    plugin: join\n    inputs:\n" + "".join(f"      {s}: {s}.out\n" for s in join_slots())
    write(ws / "workflows/wide.yaml", y)


def chain_steps() -> list[str]:
    return [f"c{c:03d}_{d}" for c in range(CHAINS) for d in range(1, DEPTH + 1)]


def build_1000(ws: Path, shards: list[str]) -> None:
    add_stage_plugin(ws)
    write_shards(ws, shards)
    y = f"name: bench-1000\ndescription: {CHAINS} shards, each through a chain of {DEPTH} copy steps\n"
    y += shard_inputs() + "steps:\n"
    for c in range(CHAINS):
        prev = f"inputs.shard_{c:03d}"
        for d in range(1, DEPTH + 1):
            y += stage_step(f"c{c:03d}_{d}", prev)
            prev = f"c{c:03d}_{d}.out"
    write(ws / "workflows/steps1000.yaml", y)


def build_big(ws: Path, gib: float) -> None:
    write(ws / "plugins/peek/plugin.yaml", PEEK_PLUGIN)
    write(ws / "plugins/peek/peek.sh", PEEK_SH, 0o755)
    write(ws / "workflows/big.yaml", "name: bench-big\ndescription: One step over a large input\n"
          "inputs:\n  big: ../data/big.bin\nsteps:\n  peek:\n    plugin: peek\n"
          "    inputs: { src: inputs.big }\n")
    # Real bytes (not sparse): one random MiB, each copy prefixed with its index so that no
    # two blocks are equal.
    size = int(gib * (1 << 30))
    block = os.urandom(1 << 20)
    (ws / "data").mkdir(parents=True, exist_ok=True)
    with open(ws / "data/big.bin", "wb") as f:
        written, i = 0, 0
        while written < size:
            chunk = (i.to_bytes(8, "little") + block[8:])[: size - written]
            f.write(chunk)
            written += len(chunk)
            i += 1
        f.flush()
        os.fsync(f.fileno())
    # pedigree does not trust the stat cache for a file modified in the last 2 s (it could
    # still be changing within the file system's timestamp granularity): the scenario is an
    # input that sits unchanged, so let it age past that window before the first run.
    age = time.time() - (ws / "data/big.bin").stat().st_mtime
    time.sleep(max(0.0, 2.1 - age))


class Pedigree:
    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.env = dict(os.environ, NO_COLOR="1")

    def run(self, ws: Path, workflow: str, steps: list[str], want_ran: set[str], label: str) -> float:
        # --jobs 1: steps run one at a time, like `snakemake -c1` and `dvc repro`, so that a
        # cold run minus its commands run one after another is a well-defined overhead.
        dt, out, err = run([str(self.binary), "run", f"workflows/{workflow}.yaml", "--jobs", "1", "--json"],
                           ws, self.env)
        try:
            doc = json.loads(out)
        except ValueError:
            raise BenchError(f"{label}: `pedigree run --json` did not print one JSON object on stdout:\n"
                             f"{tail(out)}\n--- stderr ---\n{tail(err)}")
        if not isinstance(doc, dict) or not isinstance(doc.get("steps"), list):
            raise BenchError(f"{label}: `pedigree run --json` has no `steps` list:\n{tail(out)}")
        if doc.get("status") != "succeeded":
            raise BenchError(f"{label}: run status {doc.get('status')!r}, expected 'succeeded'")
        names = [s.get("name") for s in doc["steps"]]
        if sorted(names) != sorted(steps):
            raise BenchError(f"{label}: report lists {len(names)} steps, the workflow has {len(steps)}")
        bad = [s for s in doc["steps"] if s.get("status") in ("failed", "skipped", "interrupted")]
        if bad:
            raise BenchError(f"{label}: steps not successful: {bad[:5]}")
        ran = {s["name"] for s in doc["steps"] if s.get("status") != "cached"}
        expect(label, ran, want_ran, out + err)
        return dt


def direct_cmds(plugin_dir: Path, pairs: list[tuple[dict[str, str], str]], scratch: Path) -> list:
    """Commands exactly as pedigree launches a step's plugin, for the 'step commands alone'
    baseline: (argv, env) pairs; env holds PATH, HOME and the slot variables."""
    cmds = []
    for slots, script in pairs:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(scratch),
               "LANG": "C.UTF-8", **slots}
        cmds.append((["sh", str(plugin_dir / script)], env))
    return cmds


def time_cmds(cmds, cwd: Path) -> float:
    t0 = time.perf_counter()
    for argv, env in cmds:
        p = subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if p.returncode != 0:
            raise BenchError(f"direct command {argv} exited with {p.returncode}: "
                             f"{p.stderr.decode(errors='replace')[-2000:]}")
    return time.perf_counter() - t0


def direct_work(root: Path, scratch: Path) -> dict[str, list]:
    """The step commands of each workflow, as pedigree would launch them (see direct_cmds)."""
    stage_dir = root / "templates/linear/plugins/stage"
    join_dir = root / "templates/wide/plugins/join"

    def stage(src: str, dst: str):
        return ({"PEDIGREE_INPUT_SRC": src, "PEDIGREE_OUTPUT_OUT": dst}, "stage.sh")

    lin, prev = [], str(root / "templates/linear/data/raw.csv")
    for s in STAGES:
        lin.append(stage(prev, str(scratch / f"{s}.csv")))
        prev = str(scratch / f"{s}.csv")
    shard_paths = [str(root / f"templates/wide/data/shard_{i:03d}.csv") for i in range(NWIDE)]
    shard_outs = [str(scratch / f"s{i:03d}.csv") for i in range(NWIDE)]
    wide = [stage(a, b) for a, b in zip(shard_paths, shard_outs)]
    join_env = {f"PEDIGREE_INPUT_{s.upper()}": p for s, p in zip(join_slots(), shard_outs)}
    join_env["PEDIGREE_OUTPUT_OUT"] = str(scratch / "joined.csv")
    join = direct_cmds(join_dir, [(join_env, "join.sh")], scratch)
    chains = []
    for c in range(CHAINS):
        prev = shard_paths[c]
        for d in range(1, DEPTH + 1):
            chains.append(stage(prev, str(scratch / f"c{c:03d}_{d}.csv")))
            prev = str(scratch / f"c{c:03d}_{d}.csv")
    return {
        "linear": direct_cmds(stage_dir, lin, scratch),
        "wide": direct_cmds(stage_dir, wide, scratch) + join,
        "1000": direct_cmds(stage_dir, chains, scratch),
        "change": direct_cmds(stage_dir, [wide[CHANGED]], scratch) + join,
    }


def bench_pedigree(args, tmp: Path, res: Results, raw: Path, shards: list[str],
                   builds: list[tuple[str, Path]]) -> None:
    """Every pedigree scenario with each of `builds` ((tool, binary): "pedigree" for
    `--pedigree`, plus "baseline" for `--baseline BIN`, an older build). The builds take
    turns rep by rep, the first one alternating, so that both see the same machine and the
    same file-system state: the figures of a cold run depend on what ran just before it."""
    reps = args.reps
    specs = {
        "linear": ("linear", lambda ws: build_linear(ws, raw), list(STAGES)),
        "wide": ("wide", lambda ws: build_wide(ws, shards), join_slots() + ["join"]),
        "1000": ("steps1000", lambda ws: build_1000(ws, shards), chain_steps()),
    }
    assert len(specs["1000"][2]) == 1000
    peds, work = {}, {}
    for tool, binary in builds:
        root = tmp / tool
        for key, (_wf, build, _steps) in specs.items():
            build(root / "templates" / key)
        scratch = root / "direct"
        scratch.mkdir(parents=True, exist_ok=True)
        work[tool] = (direct_work(root, scratch), scratch)
        time_cmds(work[tool][0]["wide"], scratch)  # creates every shard output the join reads
        peds[tool] = Pedigree(binary)

    def turns(i: int) -> list[str]:
        order = [tool for tool, _ in builds]
        return order if i % 2 == 0 else order[::-1]

    # Cold runs, each rep paired with the same step commands run directly right after it, so
    # that cold - work compares two figures taken under the same machine load.
    #
    # The previous rep's workspace is set aside (a rename), not deleted: the whole temp folder
    # goes at the end. On ext4 without a journal (these VMs' root file system) every new inode
    # is searched for among the inodes deleted in the last 60-300 s, so deleting a 1000-step
    # workspace right before a rep made every file that rep created slower: the bench's own
    # cleanup was charged to the next timed run.
    trash = tmp / "set-aside"
    trash.mkdir(exist_ok=True)
    for key, (wf, _build, steps) in specs.items():
        cold = {tool: [] for tool in peds}
        direct = {tool: [] for tool in peds}
        for i in range(reps):
            for tool in turns(i):
                template, ws = tmp / tool / "templates" / key, tmp / tool / f"ws-{key}"
                if ws.exists():
                    ws.rename(trash / f"{tool}-{key}-{i}")
                shutil.copytree(template, ws, symlinks=True)
                cold[tool].append(peds[tool].run(ws, wf, steps, set(steps), f"cold {key}"))
                direct[tool].append(time_cmds(work[tool][0][key], work[tool][1]))
                log(f"{tool} cold {key}: rep {i + 1}/{reps}: {cold[tool][-1] * 1000:.1f} ms "
                    f"(step commands alone {direct[tool][-1] * 1000:.1f} ms)")
        for tool in peds:
            res.add(f"cold_{key}", tool, cold[tool])
            res.add(f"work_{key}", tool, direct[tool])

    # No-op reruns in the workspaces the last cold run left behind, after one untimed warm-up.
    for key, (wf, _build, steps) in specs.items():
        noop = {tool: [] for tool in peds}
        for tool in peds:
            peds[tool].run(tmp / tool / f"ws-{key}", wf, steps, set(), f"warm-up no-op {key}")
        for i in range(reps):
            for tool in turns(i):
                noop[tool].append(peds[tool].run(tmp / tool / f"ws-{key}", wf, steps, set(),
                                                 f"no-op {key}"))
                log(f"{tool} no-op {key}: rep {i + 1}/{reps}: {noop[tool][-1] * 1000:.1f} ms")
        for tool in peds:
            res.add(f"noop_{key}", tool, noop[tool])

    # One shard changed in the wide workflow: exactly s007 and join rerun, every rep.
    changed = {tool: [] for tool in peds}
    direct = {tool: [] for tool in peds}
    for i in range(reps):
        for tool in turns(i):
            ws = tmp / tool / "ws-wide"
            (ws / f"data/shard_{CHANGED:03d}.csv").write_text(changed_shard(shards[CHANGED], i))
            changed[tool].append(peds[tool].run(ws, "wide", specs["wide"][2],
                                                {f"s{CHANGED:03d}", "join"}, f"change rep {i}"))
            direct[tool].append(time_cmds(work[tool][0]["change"], work[tool][1]))
            log(f"{tool} one shard changed: rep {i + 1}/{reps}: {changed[tool][-1] * 1000:.1f} ms "
                f"(step commands alone {direct[tool][-1] * 1000:.1f} ms)")
    for tool in peds:
        (tmp / tool / f"ws-wide/data/shard_{CHANGED:03d}.csv").write_text(shards[CHANGED])
        res.add("change_wide", tool, changed[tool])
        res.add("work_change", tool, direct[tool])

    if args.skip_big:
        return
    for tool, ped in peds.items():
        ws = tmp / tool / "ws-big"
        log(f"writing a {args.big_gib:g} GiB input in {ws / 'data'} ...")
        build_big(ws, args.big_gib)
        dt = ped.run(ws, "big", ["peek"], {"peek"}, "cold big")
        log(f"{tool} cold run over the {args.big_gib:g} GiB input (untimed setup): {dt * 1000:.0f} ms")
        ped.run(ws, "big", ["peek"], set(), "warm-up no-op big")
        res.add("noop_big", tool, measure(
            f"{tool} no-op {args.big_gib:g} GiB", reps,
            lambda i, ped=ped, ws=ws: ped.run(ws, "big", ["peek"], set(), "no-op big")))
        shutil.rmtree(ws, ignore_errors=True)


# ----------------------------------------------------------------------------------------------
# DVC and Snakemake

def venv_versions(py: Path) -> tuple[str, str] | None:
    p = subprocess.run([str(py), "-c", "import importlib.metadata as m; "
                        "print(m.version('dvc')); print(m.version('snakemake'))"],
                       stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    if p.returncode != 0:
        return None
    dvc, smk = p.stdout.split()
    return (dvc, smk) if dvc.split(".")[0] == "3" and smk.split(".")[0] == "9" else None


def ensure_venv(venv: Path) -> tuple[Path, tuple[str, str]]:
    py = venv / "bin" / "python"
    versions = venv_versions(py) if py.exists() else None
    if versions is None:
        if not py.exists():
            log(f"creating venv {venv}")
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        log(f"installing dvc>=3,<4 and snakemake>=9,<10 into {venv} (takes a few minutes)")
        subprocess.run([str(py), "-m", "pip", "install", "-q", "dvc>=3,<4", "snakemake>=9,<10"], check=True)
        versions = venv_versions(py)
        if versions is None:
            raise BenchError(f"{venv}: dvc 3.x and snakemake 9.x are not importable after pip install")
    return venv / "bin", versions


def dvc_ran(out: str) -> set[str]:
    return set(re.findall(r"Running stage '([^']+)'", out))


def smk_ran(out: str) -> set[str]:
    jobs: list[list[str]] = []
    for line in out.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line)
        if m:
            jobs.append([m.group(1), ""])
            continue
        m = re.match(r"^\s+wildcards: (.*)$", line)
        if m and jobs:
            jobs[-1][1] = m.group(1)
    return {f"{n}[{w}]" if w else n for n, w in jobs if n != "all"}


def bench_peers(args, tmp: Path, res: Results, meta: dict) -> None:
    bindir, (dvc_v, smk_v) = ensure_venv(args.venv)
    meta["dvc"], meta["snakemake"] = dvc_v, smk_v
    # The venv's bin first: `python3` in every stage command is then the venv's interpreter,
    # not a version-manager shim (~50 ms a stage).
    env = dict(os.environ, PATH=f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
               VIRTUAL_ENV=str(args.venv), DVC_NO_ANALYTICS="1", NO_COLOR="1")
    env.pop("PYTHONHOME", None)
    root = tmp / "peers"
    log(f"building peer projects in {root}")
    run([str(bindir / "python"), str(args.reference / "make_projects.py"), str(root)], tmp, env)

    tools = {
        "dvc": (["dvc", "repro"], dvc_ran, "dvc_"),
        "snakemake": (["snakemake", "-c1"], smk_ran, "smk_"),
    }
    n_linear, n_wide = len(STAGES), NWIDE + 1
    for tool, (cmd, ran_of, prefix) in tools.items():
        for shape, n in (("linear", n_linear), ("wide", n_wide)):
            d = root / f"{prefix}{shape}"
            dt, out, err = run(cmd, d, env)
            out += err
            if tool == "dvc":
                ran = ran_of(out)
                if len(ran) != n:
                    raise BenchError(f"first {tool} run of {shape} ran {len(ran)} stages, not {n}\n{tail(out)}")
                run("git add -A && git commit -qm 'bench: first run'", d, env, shell=True)
            log(f"{tool} {shape}: first run {dt:.2f} s")

    def peer_run(tool: str, d: Path, want: set[str], label: str) -> float:
        cmd, ran_of, _ = tools[tool]
        dt, out, err = run(cmd, d, env)
        expect(label, ran_of(out + err), want, out + err)
        return dt

    for tool, (_cmd, _ran_of, prefix) in tools.items():
        for shape in ("linear", "wide"):
            d = root / f"{prefix}{shape}"
            peer_run(tool, d, set(), f"{tool} warm-up no-op {shape}")
            res.add(f"noop_{shape}", tool, measure(
                f"{tool} no-op {shape}", args.reps,
                lambda i, tool=tool, d=d: peer_run(tool, d, set(), f"{tool} no-op {shape}")))

        d = root / f"{prefix}wide"
        shard = d / f"data/shard_{CHANGED:03d}.csv"
        original = shard.read_text()
        want = {f"s{CHANGED:03d}", "join"} if tool == "dvc" else {f"shard[i={CHANGED:03d}]", "join"}
        res.add("change_wide", tool, measure(
            f"{tool} one shard changed", args.reps,
            lambda i, tool=tool, d=d, want=want: peer_run(tool, d, want, f"{tool} change rep {i}"),
            prep=lambda i, shard=shard, original=original: shard.write_text(changed_shard(original, i))))
        shard.write_text(original)

    # The peers' own step work for the one-shard change: `python3 stage.py` + the `cat` join.
    d = root / "smk_wide"
    scratch = tmp / "peer-direct"
    scratch.mkdir(exist_ok=True)
    outs = " ".join(f"out/s{i:03d}.csv" for i in range(NWIDE))

    def peer_work(_i) -> float:
        t0 = time.perf_counter()
        run(["python3", "stage.py", f"data/shard_{CHANGED:03d}.csv", str(scratch / "s.csv")], d, env)
        run(f"cat {outs} > {scratch / 'joined.csv'}", d, env, shell=True)
        return time.perf_counter() - t0

    res.add("work_change", "peer cmds", measure("peer step commands, 1 shard + join", args.reps, peer_work))


# ----------------------------------------------------------------------------------------------
# Report

def ms(x: float | None) -> str:
    return "-" if x is None else f"{x * 1000:.1f}"


def targets(res: Results, gib: float, tool: str = "pedigree") -> list[dict]:
    """`tool`'s figures against the project's targets (all in seconds)."""
    m = lambda s: res.median(s, tool)  # noqa: E731
    rows = []

    def add(name, value, limit, note=""):
        if value is not None:
            rows.append({"target": name, "value_s": value, "limit_s": limit,
                         "pass": value < limit, "note": note})

    add("no-op rerun, 7 steps", m("noop_linear"), 0.020)
    add("no-op rerun, 201 steps", m("noop_wide"), 0.100)
    add("no-op rerun, 1000 steps", m("noop_1000"), 0.300)
    def paired(a: str, b: str, n: int = 1) -> float | None:
        """Median over reps of (a - b) / n: both figures of a rep were taken back to back."""
        sa, sb = res.times.get(a, {}).get(tool), res.times.get(b, {}).get(tool)
        if not sa or not sb or len(sa) != len(sb):
            return None
        return statistics.median((x - y) / n for x, y in zip(sa, sb))

    add("one input changed, minus the 2 steps' work", paired("change_wide", "work_change"), 0.150,
        f"median over reps of (change - commands); medians {ms(m('change_wide'))} - {ms(m('work_change'))} ms")
    for key, n in (("linear", len(STAGES)), ("wide", NWIDE + 1), ("1000", 1000)):
        add(f"overhead per step, cold {key} ({n})", paired(f"cold_{key}", f"work_{key}", n), 0.005,
            f"median over reps of (cold - commands) / {n}")
    add(f"no-op rerun, {gib:g} GiB input", m("noop_big"), 0.030)
    return rows


def report(res: Results, meta: dict) -> list[dict]:
    w = 44
    print()
    print(f"orchestrator overhead: {meta['reps']} reps, medians of whole-process wall time; "
          f"{meta['host']}, {meta['cpus']} CPUs, load average {meta['loadavg_start']:.2f} at start, "
          f"{meta['loadavg_end']:.2f} at end")
    if "dvc" in meta:
        print(f"peers: dvc {meta['dvc']}, snakemake {meta['snakemake']} (venv {meta['venv']})")
    print()
    print(f"{'scenario':<{w}} {'tool':<10} {'median ms':>10} {'min ms':>9} {'max ms':>9} {'peer/pedigree':>14}")
    print("-" * (w + 57))
    for key, label in SCENARIOS:
        label = label.format(gib=meta["big_gib"])
        tools = res.times.get(key)
        if not tools:
            continue
        first = True
        for tool in TOOLS:
            if tool not in tools:
                continue
            s = tools[tool]
            ratio = ""
            base = res.median(key, "pedigree")
            if tool != "pedigree" and base:
                ratio = f"{statistics.median(s) / base:.1f}x"
            print(f"{label if first else '':<{w}} {tool:<10} {ms(statistics.median(s)):>10} "
                  f"{ms(min(s)):>9} {ms(max(s)):>9} {ratio:>14}")
            first = False
    rows = targets(res, meta["big_gib"])
    for tool in ("pedigree", "baseline"):
        trows = rows if tool == "pedigree" else targets(res, meta["big_gib"], tool)
        if not trows:
            continue
        print()
        name = tool if tool == "pedigree" else f"baseline ({meta.get('baseline', '?')})"
        print(f"{name + ' target':<{w}} {'measured':>15} {'limit':>14}  result")
        print("-" * (w + 39))
        for r in trows:
            unit = " ms/step" if r["target"].startswith("overhead") else " ms"
            value = f"{r['value_s'] * 1000:.1f}{unit}"
            limit = f"< {r['limit_s'] * 1000:.0f}{unit}"
            print(f"{r['target']:<{w}} {value:>15} {limit:>14}  {'PASS' if r['pass'] else 'FAIL'}"
                  + (f"   {r['note']}" if r["note"] else ""))
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, help="repetitions per figure (default 7; 3 with --quick)")
    ap.add_argument("--only", choices=["pedigree", "peers"], help="run one half only")
    ap.add_argument("--baseline", type=Path, metavar="BIN",
                    help="an older pedigree binary measured in the same invocation (before/after)")
    ap.add_argument("--quick", action="store_true", help="CI smoke: --reps 3 and --skip-big")
    ap.add_argument("--pedigree", type=Path, default=DEFAULT_PEDIGREE, metavar="BIN",
                    help=f"pedigree binary (default {DEFAULT_PEDIGREE})")
    ap.add_argument("--venv", type=Path, default=DEFAULT_VENV,
                    help=f"venv with dvc and snakemake, created if needed (default {DEFAULT_VENV})")
    ap.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE, metavar="DIR",
                    help=f"folder with make_projects.py, gen_input.py, stage.py (default {DEFAULT_REFERENCE})")
    ap.add_argument("--big-gib", type=float, default=1.0, help="size of the large input in GiB (default 1)")
    ap.add_argument("--skip-big", action="store_true", help="skip the large-input no-op")
    ap.add_argument("--workdir", type=Path, help="where to create the temp folder (default: system temp)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder")
    ap.add_argument("--json", type=Path, metavar="OUT", help="write the raw figures as JSON")
    args = ap.parse_args()
    if args.reps is None:
        args.reps = 3 if args.quick else 7
    if args.quick:
        args.skip_big = True
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    args.pedigree = args.pedigree.resolve()
    args.venv = args.venv.expanduser().absolute()
    args.reference = args.reference.resolve()
    do_ped, do_peers = args.only in (None, "pedigree"), args.only in (None, "peers")

    for f in ("make_projects.py", "gen_input.py", "stage.py"):
        if not (args.reference / f).is_file():
            print(f"error: {args.reference / f} not found (set --reference DIR)", file=sys.stderr)
            return 2
    if do_ped and not os.access(args.pedigree, os.X_OK):
        print(f"error: pedigree binary {args.pedigree} not found or not executable\n"
              "hint: `cargo build --release`, pass `--pedigree BIN`, or run `--only peers`", file=sys.stderr)
        return 2

    meta = {"reps": args.reps, "host": platform.node(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "python": platform.python_version(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "venv": str(args.venv),
            "big_gib": args.big_gib}
    if do_ped:
        p = subprocess.run([str(args.pedigree), "--version"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, text=True)
        meta["pedigree"] = p.stdout.strip() if p.returncode == 0 else str(args.pedigree)
        if args.baseline:
            meta["baseline"] = str(args.baseline)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="pedigree-bench-", dir=args.workdir))
    log(f"working in {tmp}")
    meta["loadavg_start"] = os.getloadavg()[0]
    if meta["loadavg_start"] > 0.5:
        log(f"warning: load average {meta['loadavg_start']:.2f} before starting: something else is "
            "running, figures will be noisy")
    res = Results()
    ok = False
    try:
        if do_ped:
            raw, shards = make_data(args.reference, tmp / "data")
            builds = [("baseline", args.baseline.resolve())] if args.baseline else []
            bench_pedigree(args, tmp, res, raw, shards, builds + [("pedigree", args.pedigree)])
        if do_peers:
            bench_peers(args, tmp, res, meta)
        ok = True
    except BenchError as e:
        print(f"\nerror: {e}", file=sys.stderr)
    finally:
        if ok and not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            log(f"kept {tmp}")
    if not ok:
        return 1
    meta["loadavg_end"] = os.getloadavg()[0]
    rows = report(res, meta)
    if args.json:
        doc = {"meta": meta,
               "scenarios": {k: {"label": label.format(gib=args.big_gib), "tools": {
                   t: {"seconds": s, "median_s": statistics.median(s), "min_s": min(s), "max_s": max(s)}
                   for t, s in res.times[k].items()}} for k, label in SCENARIOS if k in res.times},
               "targets": rows}
        args.json.write_text(json.dumps(doc, indent=2) + "\n")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
