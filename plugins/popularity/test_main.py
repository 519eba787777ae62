"""Tests for the popularity plugin.

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
OUTPUTS = {"ranking": "ranking.csv", "report": "report.md"}  # as declared in plugin.yaml
DEFAULTS = {"weights": {"view": 1, "click": 2, "cart": 3, "purchase": 5}, "top": 20}


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


# Scores with the default weights: a = 1+2+5 = 8, b = 3*1+3 = 6, c = 5, d = 5*1 = 5, x = 1.
EVENTS = """\
user_id,item_id,event,ts
u1,a,view,1
u1,a,click,2
u2,a,purchase,3
u1,b,view,4
u1,b,view,5
u2,b,view,6
u2,b,cart,7
u3,c,purchase,8
u3,d,view,9
u3,d,view,10
u4,d,view,11
u4,d,view,12
u4,d,view,13
u3,x,view,14
u5,,view,15
u4,b,wishlist,16
u4,b,VIEW,17
"""

ITEMS = """\
item_id,category,price
a,books,10.00
b,toys,3.50
c,books,7.25
d,,1.00
a,games,10.00
e,toys,2.00
"""


class PopularityTest(unittest.TestCase):
    def test_ranking_order_scores_and_counts(self):
        run = run_plugin({"events": EVENTS, "items": ITEMS}, {"top": 4})
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.outputs["ranking"], (
            "rank,item_id,category,score,events,n_view,n_click,n_cart,n_purchase\n"
            "1,a,books,8,3,1,1,0,1\n"
            "2,b,toys,6,4,3,0,1,0\n"
            "3,c,books,5,1,0,0,0,1\n"   # ties on score are ordered by item_id
            "4,d,unknown,5,5,5,0,0,0\n"  # empty category in the catalogue
        ))

    def test_metrics_and_facets(self):
        run = run_plugin({"events": EVENTS, "items": ITEMS}, {"top": 2})
        self.assertEqual(run.returncode, 0, run.stderr)
        self.assertEqual(run.metrics, {
            "n_events": 17, "n_events_scored": 14, "n_items_scored": 5, "n_categories": 3,
            "n_users": 4, "top1_score": 8, "total_score": 25, "top_score_share": 0.56,
        })
        self.assertEqual(run.facets, {
            "rows_in": 17, "events_scored": 14, "events_without_item": 1,
            "ignored_events": {"VIEW": 1, "wishlist": 1}, "items_not_in_catalogue": 1,
            "items_without_category": 1, "duplicate_catalogue_ids": 1,
        })

    def test_report_lists_top_items_and_category_totals(self):
        run = run_plugin({"events": EVENTS, "items": ITEMS}, {"top": 2})
        self.assertEqual(run.returncode, 0, run.stderr)
        report = run.outputs["report"]
        self.assertTrue(report.startswith("# Item popularity\n"))
        self.assertIn("## Top 2 items", report)
        self.assertIn("| 1 | a | books | 8 | 1 | 1 | 0 | 1 |", report)
        self.assertIn("| 2 | b | toys | 6 | 3 | 0 | 1 | 0 |", report)
        self.assertNotIn("| 3 | c |", report)
        self.assertIn("2 events of unweighted types (`VIEW` 1, `wishlist` 1)", report)
        self.assertIn("1 event without item_id", report)
        self.assertIn("1 item not in the catalogue, 1 without a category", report)
        # Category totals cover all scored items; ties are ordered by name.
        categories = report[report.index("## Categories"):].splitlines()[4:]
        self.assertEqual(categories, ["| books | 2 | 4 | 13 | 52.0% |",
                                      "| toys | 1 | 4 | 6 | 24.0% |",
                                      "| unknown | 2 | 6 | 6 | 24.0% |"])

    def test_weights_replace_the_defaults(self):
        run = run_plugin({"events": EVENTS, "items": ITEMS},
                         {"weights": {"view": 0.1, "purchase": 1}})
        self.assertEqual(run.returncode, 0, run.stderr)
        ranking = rows(run.outputs["ranking"])
        self.assertEqual([(r["item_id"], r["score"]) for r in ranking],
                         [("a", "1.1"), ("c", "1"), ("d", "0.5"), ("b", "0.3"), ("x", "0.1")])
        self.assertEqual(list(ranking[0]), ["rank", "item_id", "category", "score", "events",
                                            "n_view", "n_purchase"])
        self.assertEqual(run.facets["ignored_events"],
                         {"VIEW": 1, "cart": 1, "click": 1, "wishlist": 1})

    def test_missing_column_is_an_error_naming_file_and_column(self):
        run = run_plugin({"events": EVENTS, "items": "item_id,cat\na,books\n"})
        self.assertEqual(run.returncode, 1)
        self.assertIn("input 'items'", run.stderr)
        self.assertIn("items.csv", run.stderr)
        self.assertIn("no column 'category'", run.stderr)
        self.assertIsNone(run.outputs["ranking"])
        self.assertIsNone(run.metrics)

    def test_ragged_event_row_is_an_error(self):
        run = run_plugin({"events": "item_id,event\na,view\nb\n", "items": ITEMS})
        self.assertEqual(run.returncode, 1)
        self.assertIn("input 'events'", run.stderr)
        self.assertIn("line 3", run.stderr)

    def test_bad_params_are_errors(self):
        for params, name in [({"top": 0}, "top"), ({"weights": {}}, "weights"),
                             ({"weights": {"view": "high"}}, "weights")]:
            run = run_plugin({"events": EVENTS, "items": ITEMS}, params)
            self.assertEqual(run.returncode, 1, params)
            self.assertIn(f"param '{name}'", run.stderr)

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
