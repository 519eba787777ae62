"""Tests for the csv-clean plugin.

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
OUTPUTS = {"table": "clean.csv", "rejects": "rejects.csv"}  # as declared in plugin.yaml
DEFAULTS = {"required": [], "lowercase": [], "allowed": {}, "min": {}}


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
,i1,view,2024-03-01T10:00:01Z,10.00
u2,i2,VIEW ,2024-03-01T10:00:02Z,5.50
u3,  ,click,2024-03-01T10:00:03Z,5.50
u3,i2,wishlist,2024-03-01T10:00:04Z,5.50
u4,i3,Purchase,2024-03-01T10:00:05Z,-3.00
u4,i3,cart,2024-03-01T10:00:06Z,
u5,i4,click,2024-03-01T10:00:07Z,abc
u5,i4,click,2024-03-01T10:00:08Z
 ,i5,BOGUS,2024-03-01T10:00:09Z,1.00
u6,i6,click,2024-03-01T10:00:10Z,0

u7,"i7,with comma", Click,2024-03-01T10:00:11Z,2.00
"""

QUICKSTART_PARAMS = {
    "required": ["user_id", "item_id", "event", "ts"],
    "lowercase": ["event"],
    "allowed": {"event": ["view", "click", "cart", "purchase"]},
    "min": {"price": 0},
}


class CleanTest(unittest.TestCase):
    def test_rejects_each_row_with_the_rule_it_failed(self):
        run = run_plugin({"table": EVENTS}, QUICKSTART_PARAMS)
        self.assertEqual(run.returncode, 0, run.stderr)

        clean = rows(run.outputs["table"])
        self.assertEqual(
            [(r["user_id"], r["item_id"], r["event"], r["price"]) for r in clean],
            [("u1", "i1", "view", "10.00"), ("u2", "i2", "view", "5.50"),
             ("u4", "i3", "cart", ""), ("u6", "i6", "click", "0"),
             ("u7", "i7,with comma", "click", "2.00")],
        )
        self.assertEqual(run.outputs["table"].splitlines()[0], "user_id,item_id,event,ts,price")

        rejects = rows(run.outputs["rejects"])
        self.assertEqual(
            [(r["user_id"], r["event"], r["reason"]) for r in rejects],
            [("", "view", "required:user_id"), ("u3", "click", "required:item_id"),
             ("u3", "wishlist", "allowed:event"), ("u4", "Purchase", "min:price"),
             ("u5", "click", "number:price"), ("u5", "click", "malformed"),
             (" ", "BOGUS", "required:user_id")],
        )
        # Rejected rows keep their original, un-normalised values.
        self.assertEqual(rejects[3]["price"], "-3.00")

        self.assertEqual(run.facets, {
            "rows_in": 12, "rows_out": 5, "rejected_total": 7,
            "rejected": {"allowed:event": 1, "malformed": 1, "min:price": 1,
                         "number:price": 1, "required:item_id": 1, "required:user_id": 2},
        })
        self.assertEqual(run.metrics, {"rows_out": 5, "rows_rejected": 7})

    def test_allowed_values_are_compared_after_normalisation_only_when_asked(self):
        params = {"allowed": {"event": ["view"]}}
        run = run_plugin({"table": "event\nview\nVIEW\n view\n"}, params)
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual([r["event"] for r in rows(run.outputs["table"])], ["view"])
        run = run_plugin({"table": "event\nview\nVIEW\n view\n"},
                         {**params, "lowercase": ["event"]})
        self.assertEqual([r["event"] for r in rows(run.outputs["table"])], ["view"] * 3)

    def test_allowed_numbers_from_yaml_match_cell_text(self):
        run = run_plugin({"table": "rating\n1\n2\n5\n"}, {"allowed": {"rating": [1, 2.0]}})
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual([r["rating"] for r in rows(run.outputs["table"])], ["1", "2"])

    def test_no_params_copies_the_table(self):
        run = run_plugin({"table": EVENTS.replace("u5,i4,click,2024-03-01T10:00:08Z\n", "")})
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(len(rows(run.outputs["table"])), 11)
        self.assertEqual(rows(run.outputs["rejects"]), [])
        self.assertEqual(run.outputs["rejects"], "user_id,item_id,event,ts,price,reason\n")
        self.assertEqual(run.facets["rejected"], {})

    def test_missing_column_is_an_error_naming_file_and_column(self):
        run = run_plugin({"table": "user,item\nu1,i1\n"}, {"required": ["user_id"]})
        self.assertEqual(run.returncode, 1)
        self.assertIn("no column 'user_id'", run.stderr)
        self.assertIn("table.csv", run.stderr)
        self.assertIn("param 'required'", run.stderr)

    def test_empty_input_is_an_error(self):
        run = run_plugin({"table": ""})
        self.assertEqual(run.returncode, 1)
        self.assertIn("no header", run.stderr)

    def test_bad_param_is_an_error(self):
        run = run_plugin({"table": "price\n1\n"}, {"min": {"price": "zero"}})
        self.assertEqual(run.returncode, 1)
        self.assertIn("param 'min'", run.stderr)

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
