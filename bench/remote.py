#!/usr/bin/env python3
"""The remote cache on loopback: pedigree against DVC, same bucket, same invocation.

Starts a moto S3 server on 127.0.0.1 and measures

1. the flagship (`workflows/ecommerce-gnnr.yaml`) in a fresh workspace with every step a
   remote hit (but `publish`, which always runs where the run is and copies the fetched
   model), against computing it (target: the whole run <= 1 s);
2. upload and download throughput of one large output (default 1 GiB), through `pedigree
   push` and `pedigree pull`, on moto and on a `file://` folder (target >= 200 MB/s);
3. the no-op rerun with a remote configured against `--no-remote` (target: +2 ms at most);
4. the peer: `dvc push` / `dvc pull` of the same outputs (the flagship's and the large
   file) to the same moto bucket.

It prints medians and ratios; it exits non-zero only when something fails to run, never
because a target is missed.

    cargo build --release
    python3 bench/remote.py [--reps 5] [--gib 1] [--pedigree target/release/pedigree] [--json out.json]

Needs `moto_server` and boto3 (`pip install 'moto[server]'`) and, for the peer, `dvc` with
its S3 support (`pip install 'dvc[s3]'`; `--dvc PATH` names the executable, `--no-dvc`
skips it).
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BUCKET = "team-cache"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Moto:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["moto_server", "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            self.connect()
        except BaseException:
            self.stop()
            raise

    def connect(self):
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                if time.time() > deadline:
                    raise SystemExit("moto_server did not start")
                time.sleep(0.1)
        import boto3

        self.s3 = boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id="bench",
            aws_secret_access_key="bench",
            region_name="us-east-1",
        )
        self.s3.create_bucket(Bucket=BUCKET)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def run(cmd, cwd, env, check=True):
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t
    if check and p.returncode != 0:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(map(str, cmd))}\n{p.stdout}\n{p.stderr}")
    return dt, p


def median(xs):
    return statistics.median(xs) if xs else float("nan")


class Bench:
    def __init__(self, args, tmp):
        self.args = args
        self.tmp = tmp
        self.bin = str(Path(args.pedigree).resolve())
        self.moto = Moto()
        try:
            self.setup(tmp)
        except BaseException:
            self.moto.stop()
            raise

    def setup(self, tmp):
        self.home = tmp / "home"
        self.home.mkdir()
        self.env = dict(os.environ)
        self.env.update(
            HOME=str(self.home),
            XDG_CONFIG_HOME=str(self.home / "config"),
            AWS_ACCESS_KEY_ID="bench",
            AWS_SECRET_ACCESS_KEY="bench",
        )
        for k in ["PEDIGREE_REMOTE", "PEDIGREE_PUSH", "PEDIGREE_SIGNING_KEY", "PEDIGREE_WORKSPACE"]:
            self.env.pop(k, None)
        self.key_file = self.home / "ci.key"
        _, p = run([self.bin, "key", "new", "--out", str(self.key_file)], tmp, self.env)
        self.public = p.stdout.strip()
        self.push_env = dict(self.env, PEDIGREE_SIGNING_KEY_FILE=str(self.key_file))
        self.results = {}

    def toml(self, url):
        s = f'[remote]\nurl = "{url}"\n'
        if url.startswith("s3://"):
            s += f'options = {{ endpoint = "{self.moto.endpoint}", allow_http = "true", region = "us-east-1" }}\n'
        s += f'[remote.trust]\nci = "{self.public}"\n'
        return s

    def workspace(self, name, url, files=("workflows", "plugins")):
        ws = self.tmp / name
        ws.mkdir()
        for f in files:
            src = REPO / f
            if src.exists():
                shutil.copytree(src, ws / f, ignore=shutil.ignore_patterns("*.lock", "__pycache__"))
        (ws / "pedigree.toml").write_text(self.toml(url))
        return ws

    def flagship(self):
        wf = "workflows/ecommerce-gnnr.yaml"
        url = "s3://team-cache/flagship"
        a = self.workspace("flag-a", url)
        dt, p = run([self.bin, "run", wf, "--json", "--push"], a, self.push_env)
        steps = json.loads(p.stdout)["steps"]
        assert all(s["status"] == "succeeded" for s in steps), steps
        compute = [dt]
        hits = []
        noop_remote, noop_local = [], []
        for i in range(self.args.reps):
            b = self.workspace(f"flag-b{i}", url)
            dt, p = run([self.bin, "run", wf, "--json"], b, self.env)
            steps = json.loads(p.stdout)["steps"]
            # `publish` always runs where the run is (its release is the workspace's
            # registry and lineage): it copies the fetched model.
            bad = [s["name"] for s in steps if s["name"] != "publish" and not s["reason"].startswith("cached: from remote")]
            if bad:
                raise SystemExit(f"not remote hits: {bad}\n{p.stderr}")
            hits.append(dt)
            if i == 0:
                # Alternate, so drift hits both sides alike.
                for _ in range(self.args.reps * 2):
                    dt, _ = run([self.bin, "run", wf, "--json"], b, self.env)
                    noop_remote.append(dt)
                    dt, _ = run([self.bin, "run", wf, "--json", "--no-remote"], b, self.env)
                    noop_local.append(dt)
        # Compute again in a fresh workspace without a remote, for the ratio.
        for i in range(1, min(self.args.reps, 3)):
            c = self.workspace(f"flag-c{i}", url)
            dt, _ = run([self.bin, "run", wf, "--json", "--no-remote"], c, self.env)
            compute.append(dt)
        self.results["flagship"] = {
            "compute_s": compute,
            "remote_hits_s": hits,
            "noop_with_remote_s": noop_remote,
            "noop_without_remote_s": noop_local,
        }
        print("\n== flagship (workflows/ecommerce-gnnr.yaml), fresh workspace")
        print(f"  computing every step      median {median(compute):8.3f} s  (n={len(compute)})")
        print(f"  every step a remote hit   median {median(hits):8.3f} s  (n={len(hits)})  target <= 1 s")
        print(f"  ratio compute / remote    {median(compute) / median(hits):8.1f}x")
        d = (median(noop_remote) - median(noop_local)) * 1000
        print(f"  no-op rerun, remote set   median {median(noop_remote) * 1000:8.1f} ms")
        print(f"  no-op rerun, --no-remote  median {median(noop_local) * 1000:8.1f} ms  difference {d:+.1f} ms  target <= +2 ms")
        return a

    def big(self):
        gib = self.args.gib
        size = int(gib * (1 << 30))
        plugin = (
            "command: [python3, \"${plugin}/big.py\"]\noutputs: { out: { file: big.bin } }\n"
            f"params: {{ size: {{ type: int, default: {size} }} }}\nsandbox: false\ntimeout: 3600\n"
        )
        script = (
            "import os\nn = int(os.environ['PEDIGREE_PARAM_SIZE'])\n"
            "chunk = os.urandom(1 << 20)\n"
            "with open(os.environ['PEDIGREE_OUTPUT_OUT'], 'wb') as f:\n"
            "    left = n\n    i = 0\n"
            "    while left:\n        b = bytes([i % 256]) + chunk[1:]\n        k = min(left, len(b))\n"
            "        f.write(b[:k]); left -= k; i += 1\n"
        )
        wf = "name: big\nsteps:\n  big:\n    plugin: big\n"
        out = {}
        print(f"\n== one {gib:g} GiB output: push and pull")
        for label, url in [("moto s3", "s3://team-cache/big"), ("file://", f"file://{self.tmp / 'folder-remote'}")]:
            a = self.workspace(f"big-a-{label[:4]}", url, files=())
            (a / "plugins/big").mkdir(parents=True)
            (a / "plugins/big/plugin.yaml").write_text(plugin)
            (a / "plugins/big/big.py").write_text(script)
            (a / "workflows").mkdir()
            (a / "workflows/big.yaml").write_text(wf)
            run([self.bin, "run", "workflows/big.yaml", "--json", "--no-remote"], a, self.env)
            up, _ = run([self.bin, "push", "latest"], a, self.push_env)
            downs = []
            for i in range(max(1, self.args.reps // 2)):
                b = self.workspace(f"big-b-{label[:4]}-{i}", url, files=())
                shutil.copytree(a / "plugins", b / "plugins")
                shutil.copytree(a / "workflows", b / "workflows")
                dt, p = run([self.bin, "pull", "workflows/big.yaml"], b, self.env)
                if "pulled 1 step" not in p.stdout:
                    raise SystemExit(f"pull did not pull: {p.stdout}\n{p.stderr}")
                downs.append(dt)
                shutil.rmtree(b)
            mb = size / 1e6
            out[label] = {"upload_s": up, "download_s": downs}
            if label == "moto s3":
                # The server's own ceiling: boto3 (its parallel transfer manager)
                # moving the same bytes to and from the same moto.
                obj = next(p for p in (a / ".pedigree/objects").rglob("*") if p.is_file() and p.stat().st_size == size)
                t0 = time.perf_counter()
                self.moto.s3.upload_file(str(obj), BUCKET, "ceiling/big.bin")
                b_up = time.perf_counter() - t0
                t0 = time.perf_counter()
                self.moto.s3.download_file(BUCKET, "ceiling/big.bin", str(self.tmp / "ceiling.bin"))
                b_down = time.perf_counter() - t0
                os.remove(self.tmp / "ceiling.bin")
                out["boto3 on moto"] = {"upload_s": b_up, "download_s": [b_down]}
                print(f"  boto3 on moto (the server's ceiling)  upload {b_up:6.2f} s {mb / b_up:6.0f} MB/s   download {b_down:6.2f} s {mb / b_down:6.0f} MB/s")
            print(f"  {label:8} upload (push)    {up:7.2f} s  {mb / up:8.0f} MB/s")
            print(f"  {label:8} download (pull)  {median(downs):7.2f} s  {mb / median(downs):8.0f} MB/s  (median of {len(downs)}; target >= 200 MB/s)")
            if label == "moto s3":
                self.big_file = next((a / ".pedigree/objects").rglob("*"), None)
                self.big_ws = a
            else:
                shutil.rmtree(a)
        self.results["big"] = out

    def dvc(self, flagship_ws):
        exe = self.args.dvc or shutil.which("dvc")
        if self.args.no_dvc or not exe:
            print("\n== dvc: skipped" + ("" if self.args.no_dvc else " (no `dvc` on PATH; pip install 'dvc[s3]')"))
            return
        env = dict(self.env)
        env.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        out = {}
        # The flagship's outputs: every object its run stored, as files.
        objs = [p for p in (flagship_ws / ".pedigree/objects").rglob("*") if p.is_file()]
        big = [p for p in (self.big_ws / ".pedigree/objects").rglob("*") if p.is_file() and p.stat().st_size > (1 << 28)]
        print("\n== dvc push / pull of the same outputs, same moto bucket")
        for label, files in [("flagship outputs", objs), ("large output", big)]:
            src = self.tmp / f"dvc-{label[:4]}"
            src.mkdir()
            run(["git", "init", "-q"], src, env)
            run([exe, "init", "-q"], src, env)
            run([exe, "remote", "add", "-d", "s3", f"s3://{BUCKET}/dvc-{label[:4]}"], src, env)
            run([exe, "remote", "modify", "s3", "endpointurl", self.moto.endpoint], src, env)
            data = src / "data"
            data.mkdir()
            for f in files:
                shutil.copyfile(f, data / f.name)
            run([exe, "add", "-q", "data"], src, env)
            up, _ = run([exe, "push", "-q"], src, env)
            downs = []
            for i in range(max(1, self.args.reps // 2)):
                dst = self.tmp / f"dvc-{label[:4]}-pull{i}"
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("data", "cache", "tmp"))
                shutil.rmtree(dst / ".dvc/cache", ignore_errors=True)
                dt, _ = run([exe, "pull", "-q"], dst, env)
                downs.append(dt)
                shutil.rmtree(dst)
            size = sum(f.stat().st_size for f in files) / 1e6
            out[label] = {"push_s": up, "pull_s": downs, "mb": size}
            print(f"  {label:16} dvc push {up:7.2f} s ({size / up:6.0f} MB/s)   dvc pull median {median(downs):7.2f} s ({size / median(downs):6.0f} MB/s)")
        self.results["dvc"] = out
        f = self.results.get("flagship", {})
        if f and "flagship outputs" in out:
            print(f"  ratio dvc pull (outputs only) / pedigree run with every step a remote hit: "
                  f"{median(out['flagship outputs']['pull_s']) / median(f['remote_hits_s']):.2f}x")
        b = self.results.get("big", {}).get("moto s3")
        if b and "large output" in out:
            print(f"  ratio dvc pull / pedigree pull of the large output: "
                  f"{median(out['large output']['pull_s']) / median(b['download_s']):.2f}x;  "
                  f"push: {out['large output']['push_s'] / b['upload_s']:.2f}x")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pedigree", default=str(REPO / "target/release/pedigree"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--gib", type=float, default=1.0)
    ap.add_argument("--dvc")
    ap.add_argument("--no-dvc", action="store_true")
    ap.add_argument("--skip-big", action="store_true")
    ap.add_argument("--only", choices=["flagship", "big"], help="run one part (no dvc)")
    ap.add_argument("--workdir")
    ap.add_argument("--json")
    args = ap.parse_args()
    if not Path(args.pedigree).exists():
        raise SystemExit(f"no pedigree binary at {args.pedigree}: cargo build --release (or --pedigree BIN)")
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        b = Bench(args, Path(tmp))
        try:
            print(f"pedigree {args.pedigree}; moto on {b.moto.endpoint}; {args.reps} reps")
            if args.only == "big":
                b.big()
                return
            flag = b.flagship()
            if args.only == "flagship":
                return
            if not args.skip_big:
                b.big()
                b.dvc(flag)
        finally:
            b.moto.stop()
        if args.json:
            Path(args.json).write_text(json.dumps(b.results, indent=2))


if __name__ == "__main__":
    sys.exit(main())
