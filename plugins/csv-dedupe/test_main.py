"""Tests for the csv-dedupe plugin.

Each test runs main.py as a subprocess the way pedigree does (CONTRACT.md): a fresh scratch
folder as cwd, a cleared environment, request.json named by $PEDIGREE_REQUEST, read-only
inputs and output paths outside the scratch folder. Run from the workspace root with
`python3 -m unittest discover -s plugins -p 'test_*.py'`.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import unittest
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUTPUTS = {"table": "dedup.csv"}  # as declared in plugin.yaml
DEFAULTS = {"key": [], "keep": "first"}


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str
    outputs: dict  # slot -> file text (None when not written)
    metrics: object
    facets: object


def env_name(name: str) -> str:
    return name.upper().replace("-", "_")


def run_plugin(inputs: dict[str, str], params: dict | None = None) -> Run:
    """Run main.py on `inputs` (slot -> CSV text) with `params` over the defaults."""
    with tempfile.TemporaryDirectory() as root:
        root = Path(root)
        scratch, in_dir, out_dir = root / "scratch", root / "in", root / "out"
        for d in (scratch / "tmp", in_dir, out_dir):
            d.mkdir(parents=True)
        in_paths = {}
        for slot, text in inputs.items():
            path = in_dir / f"{slot}.csv"
            path.write_text(text, encoding="utf-8")
            path.chmod(0o444)
            in_paths[slot] = str(path)
        out_paths = {slot: str(out_dir / name) for slot, name in OUTPUTS.items()}
        all_params = {**DEFAULTS, **(params or {})}
        request = {"step": "test", "inputs": in_paths, "outputs": out_paths,
                   "params": all_params, "scratch": str(scratch)}
        (root / "request.json").write_text(json.dumps(request), encoding="utf-8")

        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(scratch),
               "TMPDIR": str(scratch / "tmp"), "LANG": "C.UTF-8",
               "PYTHONDONTWRITEBYTECODE": "1", "PEDIGREE_REQUEST": str(root / "request.json"),
               "PEDIGREE_PLUGIN_DIR": str(HERE)}
        for slot, path in in_paths.items():
            env[f"PEDIGREE_INPUT_{env_name(slot)}"] = path
        for slot, path in out_paths.items():
            env[f"PEDIGREE_OUTPUT_{env_name(slot)}"] = path
        for name, value in all_params.items():
            text = value if isinstance(value, str) else json.dumps(value)
            env[f"PEDIGREE_PARAM_{env_name(name)}"] = text

        proc = subprocess.run([sys.executable, str(HERE / "main.py")], cwd=scratch, env=env,
                              capture_output=True, text=True, timeout=60)

        def read(path: Path):
            return path.read_text(encoding="utf-8") if path.exists() else None

        def read_json(path: Path):
            return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

        return Run(proc.returncode, proc.stdout, proc.stderr,
                   {slot: read(Path(p)) for slot, p in out_paths.items()},
                   read_json(scratch / "metrics.json"), read_json(scratch / "facets.json"))


def rows(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


EVENTS = """\
user_id,item_id,event,ts,price
u1,i1,view,2024-03-01T10:00:00Z,10.00
u1,i1,view,2024-03-01T10:00:00Z,10.00
u2,i2,click,2024-03-01T10:00:01Z,5.50
u1,i1,view,2024-03-01T10:00:00Z,9.00
u2,i2,click,2024-03-01T10:00:02Z,5.50

u3,i3,cart,2024-03-01T10:00:03Z,1.00
u2,i2,click,2024-03-01T10:00:01Z,5.75
"""

KEY = ["user_id", "item_id", "event", "ts"]


class DedupeTest(unittest.TestCase):
    def test_keyed_keep_first(self):
        run = run_plugin({"table": EVENTS}, {"key": KEY, "keep": "first"})
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(
            [(r["user_id"], r["ts"][-3:-1], r["price"]) for r in rows(run.outputs["table"])],
            [("u1", "00", "10.00"), ("u2", "01", "5.50"), ("u2", "02", "5.50"),
             ("u3", "03", "1.00")],
        )
        self.assertEqual(run.facets, {"rows_in": 7, "rows_out": 4, "duplicates_removed": 3,
                                      "key": KEY, "keep": "first"})
        self.assertEqual(run.metrics, {"rows_out": 4, "duplicates_removed": 3})

    def test_keyed_keep_last_keeps_the_last_occurrence_at_its_position(self):
        run = run_plugin({"table": EVENTS}, {"key": KEY, "keep": "last"})
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(
            [(r["user_id"], r["ts"][-3:-1], r["price"]) for r in rows(run.outputs["table"])],
            [("u1", "00", "9.00"), ("u2", "02", "5.50"), ("u3", "03", "1.00"),
             ("u2", "01", "5.75")],
        )
        self.assertEqual(run.facets["duplicates_removed"], 3)

    def test_empty_key_compares_whole_rows(self):
        run = run_plugin({"table": EVENTS})
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(len(rows(run.outputs["table"])), 6)
        self.assertEqual(run.facets["duplicates_removed"], 1)
        self.assertEqual(run.outputs["table"].splitlines()[0], "user_id,item_id,event,ts,price")

    def test_comparison_is_exact(self):
        run = run_plugin({"table": "event\nview\nVIEW\nview \nview\n"})
        self.assertEqual([r["event"] for r in rows(run.outputs["table"])],
                         ["view", "VIEW", "view "])

    def test_no_duplicates(self):
        run = run_plugin({"table": "a,b\n1,2\n2,1\n"}, {"key": ["a"]})
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.outputs["table"], "a,b\n1,2\n2,1\n")
        self.assertEqual(run.facets["duplicates_removed"], 0)

    def test_missing_key_column_is_an_error(self):
        run = run_plugin({"table": EVENTS}, {"key": ["user_id", "session"]})
        self.assertEqual(run.returncode, 1)
        self.assertIn("no column 'session'", run.stderr)
        self.assertIn("table.csv", run.stderr)
        self.assertIsNone(run.facets)

    def test_ragged_row_is_an_error_naming_the_line(self):
        run = run_plugin({"table": "a,b\n1,2\n3\n"})
        self.assertEqual(run.returncode, 1)
        self.assertIn("line 3", run.stderr)

    def test_bad_keep_is_an_error(self):
        run = run_plugin({"table": EVENTS}, {"keep": "newest"})
        self.assertEqual(run.returncode, 1)
        self.assertIn("param 'keep'", run.stderr)

    def test_plugin_yaml_declares_the_same_defaults(self):
        try:
            import yaml  # not a dependency of the plugin; only used for this consistency check
        except ImportError:
            self.skipTest("PyYAML not installed")
        manifest = yaml.safe_load((HERE / "plugin.yaml").read_text(encoding="utf-8"))
        self.assertEqual({k: v.get("default") for k, v in manifest["params"].items()}, DEFAULTS)
        self.assertEqual({k: v["file"] for k, v in manifest["outputs"].items()}, OUTPUTS)


if __name__ == "__main__":
    unittest.main()
