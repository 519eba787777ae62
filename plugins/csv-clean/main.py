"""csv-clean: validate and normalise a CSV table, splitting it into clean rows and rejects.

A pedigree plugin (see plugin.yaml). Python 3.11 standard library only.

Inputs
  table     a UTF-8 CSV file with a header row.
Outputs
  table     clean.csv: the rows that passed every rule, with the input's columns, normalised.
  rejects   rejects.csv: the rows that failed, with their original values, plus a `reason`
            column naming the rule that rejected them.
Params
  required  list  columns that must be non-empty (a cell of only whitespace counts as empty)
  lowercase list  columns whose values are trimmed and lower-cased before any check
  allowed   map   column -> list of allowed values, compared after normalisation
  min       map   column -> minimum numeric value; an empty cell passes (list the column in
                  `required` to forbid that), a cell that is not a finite number is rejected

Every row is checked against the rules in this order and rejected by the first it fails:

  malformed          the row has a different number of fields than the header
  required:COLUMN    COLUMN is empty
  allowed:COLUMN     COLUMN's value is not in the allowed list
  number:COLUMN      COLUMN has a minimum but its value is not a number
  min:COLUMN         COLUMN's value is below its minimum

The reason written to rejects.csv is one of the names above. Blank lines are skipped.

Also writes, in the working directory,
  facets.json   {"rows_in": N, "rows_out": N, "rejected_total": N, "rejected": {reason: count}}
  metrics.json  {"rows_out": N, "rows_rejected": N}

Exit status 0 on success. A bad request or param, an unreadable input, a missing header or a
column named in a param but absent from the header: a message on stderr, exit status 1.
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path

PLUGIN = "csv-clean"
DEFAULTS = {"required": [], "lowercase": [], "allowed": {}, "min": {}}
REASON_COLUMN = "reason"


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


def string_list(name: str, value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PluginError(f"param '{name}' must be a list of column names, got {value!r}")
    return value


def scalar_text(value: object) -> str:
    """YAML scalars as the text they would match in a CSV cell (true -> 'true', 2.0 -> '2')."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_params(request: dict) -> dict:
    """Params from the request, defaults applied, validated and normalised."""
    raw = dict(DEFAULTS)
    raw.update(request.get("params") or {})
    for unknown in sorted(set(raw) - set(DEFAULTS)):
        print(f"{PLUGIN}: warning: ignoring unknown param '{unknown}'", file=sys.stderr)

    allowed = raw["allowed"]
    if not isinstance(allowed, dict) or not all(
        isinstance(v, list) and all(isinstance(x, (str, int, float)) for x in v)
        for v in allowed.values()
    ):
        raise PluginError(
            f"param 'allowed' must be a map of column -> list of values, got {allowed!r}"
        )
    minimum = raw["min"]
    if not isinstance(minimum, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in minimum.values()
    ):
        raise PluginError(f"param 'min' must be a map of column -> number, got {minimum!r}")
    return {
        "required": string_list("required", raw["required"]),
        "lowercase": string_list("lowercase", raw["lowercase"]),
        "allowed": {col: {scalar_text(v) for v in values} for col, values in allowed.items()},
        "min": {col: float(v) for col, v in minimum.items()},
    }


# ---------------------------------------------------------------------------- cleaning


def parse_number(text: str) -> float | None:
    """A finite float, or None when the text is not one."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def check_row(row: list[str], index: dict[str, int], params: dict) -> str | None:
    """The reason the (normalised) row is rejected, or None when it passes every rule."""
    for col in params["required"]:
        if not row[index[col]].strip():
            return f"required:{col}"
    for col, values in params["allowed"].items():
        if row[index[col]] not in values:
            return f"allowed:{col}"
    for col, lowest in params["min"].items():
        text = row[index[col]].strip()
        if not text:
            continue
        value = parse_number(text)
        if value is None:
            return f"number:{col}"
        if value < lowest:
            return f"min:{col}"
    return None


def clean(in_path: str, clean_path: str, rejects_path: str, params: dict) -> dict:
    """Clean one CSV file; returns the facets."""
    try:
        src = open(in_path, newline="", encoding="utf-8-sig")
    except OSError as e:
        raise PluginError(f"cannot read input 'table' ({in_path}): {e}") from e
    with src, open(clean_path, "w", newline="", encoding="utf-8") as out_f, open(
        rejects_path, "w", newline="", encoding="utf-8"
    ) as rej_f:
        reader = csv.reader(src)
        try:
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise PluginError(f"input 'table' ({in_path}) is empty or has no header row")
            duplicates = sorted({h for h in header if header.count(h) > 1})
            if duplicates:
                raise PluginError(
                    f"input 'table' ({in_path}) has duplicate columns: {', '.join(duplicates)}"
                )
            if REASON_COLUMN in header:
                raise PluginError(
                    f"input 'table' ({in_path}) already has a column '{REASON_COLUMN}', "
                    "which rejects.csv uses for the rejection reason; rename it first"
                )
            index = {name: i for i, name in enumerate(header)}
            for param in ("required", "lowercase", "allowed", "min"):
                for col in params[param]:
                    if col not in index:
                        raise PluginError(
                            f"input 'table' ({in_path}) has no column '{col}' "
                            f"(named in param '{param}'); its columns are: {', '.join(header)}"
                        )

            clean_w = csv.writer(out_f, lineterminator="\n")
            rej_w = csv.writer(rej_f, lineterminator="\n")
            clean_w.writerow(header)
            rej_w.writerow([*header, REASON_COLUMN])
            lower_idx = [index[c] for c in params["lowercase"]]
            rows_in = rows_out = 0
            rejected: dict[str, int] = {}
            for row in reader:
                if not row:
                    continue  # blank line
                rows_in += 1
                if len(row) != len(header):
                    reason = "malformed"
                    original = (row + [""] * len(header))[: len(header)]
                else:
                    original = row
                    row = list(row)
                    for i in lower_idx:
                        row[i] = row[i].strip().lower()
                    reason = check_row(row, index, params)
                if reason is None:
                    clean_w.writerow(row)
                    rows_out += 1
                else:
                    rej_w.writerow([*original, reason])
                    rejected[reason] = rejected.get(reason, 0) + 1
        except csv.Error as e:
            raise PluginError(f"input 'table' ({in_path}) line {reader.line_num}: {e}") from e
        except UnicodeDecodeError as e:
            raise PluginError(f"input 'table' ({in_path}) is not UTF-8 text: {e}") from e

    return {
        "rows_in": rows_in,
        "rows_out": rows_out,
        "rejected_total": rows_in - rows_out,
        "rejected": dict(sorted(rejected.items())),
    }


def write_json(name: str, value: object) -> None:
    with open(name, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")


def main() -> int:
    try:
        request = load_request()
        params = read_params(request)
        in_path = slot_path(request, "inputs", "table")
        clean_path = slot_path(request, "outputs", "table")
        rejects_path = slot_path(request, "outputs", "rejects")
        for path in (clean_path, rejects_path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        facets = clean(in_path, clean_path, rejects_path, params)
    except PluginError as e:
        print(f"{PLUGIN}: error: {e}", file=sys.stderr)
        return 1
    write_json("facets.json", facets)
    write_json("metrics.json",
               {"rows_out": facets["rows_out"], "rows_rejected": facets["rejected_total"]})
    summary = ", ".join(f"{k} {v}" for k, v in facets["rejected"].items()) or "none"
    print(f"{PLUGIN}: {facets['rows_in']} rows in, {facets['rows_out']} out; rejected: {summary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
