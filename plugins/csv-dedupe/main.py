"""csv-dedupe: remove duplicate rows from a CSV table.

A pedigree plugin (see plugin.yaml). Python 3.11 standard library only.

Inputs
  table   a UTF-8 CSV file with a header row; every row must have as many fields as the header.
Outputs
  table   dedup.csv: the input's header and rows, without duplicates, in input order.
Params
  key     list    columns that identify a row; two rows are duplicates when these cells are
                  equal (exactly, byte for byte: normalise first with csv-clean). An empty
                  list (the default) compares whole rows.
  keep    string  `first` (default) keeps the first occurrence of each key, `last` the last
                  one; either way the kept rows stay at their own position in the input order.

Also writes, in the working directory,
  facets.json   {"rows_in": N, "rows_out": N, "duplicates_removed": N, "key": [...], "keep": ...}
  metrics.json  {"rows_out": N, "duplicates_removed": N}

Exit status 0 on success. A bad request or param, an unreadable input, a missing header, a key
column absent from the header or a row with the wrong number of fields: a message on stderr,
exit status 1.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

PLUGIN = "csv-dedupe"
DEFAULTS = {"key": [], "keep": "first"}


class PluginError(Exception):
    """An error reported to the user as one line on stderr (exit status 1)."""


# ---------------------------------------------------------------------------- request & params


def load_request() -> dict:
    """Read the request file named by $PEDIGREE_REQUEST (see CONTRACT.md)."""
    path = os.environ.get("PEDIGREE_REQUEST")
    if not path:
        raise PluginError("PEDIGREE_REQUEST is not set; this program is run by pedigree")
    try:
        with open(path, encoding="utf-8") as f:
            request = json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise PluginError(f"cannot read request file {path}: {e}") from e
    if not isinstance(request, dict):
        raise PluginError(f"request file {path} is not a JSON object")
    return request


def slot_path(request: dict, section: str, slot: str) -> str:
    """The path given for an input or output slot."""
    path = (request.get(section) or {}).get(slot)
    if not isinstance(path, str) or not path:
        raise PluginError(f"request has no path for {section[:-1]} slot '{slot}'")
    return path


def read_params(request: dict) -> dict:
    """Params from the request, defaults applied and validated."""
    params = dict(DEFAULTS)
    params.update(request.get("params") or {})
    for unknown in sorted(set(params) - set(DEFAULTS)):
        print(f"{PLUGIN}: warning: ignoring unknown param '{unknown}'", file=sys.stderr)
    key = params["key"]
    if not isinstance(key, list) or not all(isinstance(c, str) for c in key):
        raise PluginError(f"param 'key' must be a list of column names, got {key!r}")
    if len(set(key)) != len(key):
        raise PluginError(f"param 'key' names a column twice: {key!r}")
    if params["keep"] not in ("first", "last"):
        raise PluginError(f"param 'keep' must be 'first' or 'last', got {params['keep']!r}")
    return {"key": key, "keep": params["keep"]}


# ---------------------------------------------------------------------------- de-duplication


def read_table(path: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file; blank lines are skipped, ragged rows are an error."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise PluginError(f"input 'table' ({path}) is empty or has no header row")
            body = []
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise PluginError(
                        f"input 'table' ({path}) line {reader.line_num}: {len(row)} fields, "
                        f"the header has {len(header)}"
                    )
                body.append(row)
    except OSError as e:
        raise PluginError(f"cannot read input 'table' ({path}): {e}") from e
    except csv.Error as e:
        raise PluginError(f"input 'table' ({path}) line {reader.line_num}: {e}") from e
    except UnicodeDecodeError as e:
        raise PluginError(f"input 'table' ({path}) is not UTF-8 text: {e}") from e
    return header, body


def dedupe(header: list[str], body: list[list[str]], key: list[str], keep: str,
           path: str) -> list[list[str]]:
    """The rows of `body` without duplicates of `key`, in input order."""
    for col in key:
        if col not in header:
            raise PluginError(
                f"input 'table' ({path}) has no column '{col}' (named in param 'key'); "
                f"its columns are: {', '.join(header)}"
            )
    if key:
        idx = [header.index(c) for c in key]
        keys = [tuple(row[i] for i in idx) for row in body]
    else:
        keys = [tuple(row) for row in body]

    if keep == "first":
        seen: set[tuple] = set()
        kept = []
        for k, row in zip(keys, body):
            if k not in seen:
                seen.add(k)
                kept.append(row)
        return kept
    last = {k: i for i, k in enumerate(keys)}
    return [row for i, (k, row) in enumerate(zip(keys, body)) if last[k] == i]


def write_json(name: str, value: object) -> None:
    with open(name, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")


def main() -> int:
    try:
        request = load_request()
        params = read_params(request)
        in_path = slot_path(request, "inputs", "table")
        out_path = slot_path(request, "outputs", "table")
        header, body = read_table(in_path)
        kept = dedupe(header, body, params["key"], params["keep"], in_path)
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
        with open(out_path, "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(kept)
    except PluginError as e:
        print(f"{PLUGIN}: error: {e}", file=sys.stderr)
        return 1

    removed = len(body) - len(kept)
    write_json("facets.json", {"rows_in": len(body), "rows_out": len(kept),
                               "duplicates_removed": removed, "key": params["key"],
                               "keep": params["keep"]})
    write_json("metrics.json", {"rows_out": len(kept), "duplicates_removed": removed})
    key = ", ".join(params["key"]) or "whole row"
    print(f"{PLUGIN}: {len(body)} rows in, {len(kept)} out; {removed} duplicates removed "
          f"(key: {key}; keep {params['keep']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
