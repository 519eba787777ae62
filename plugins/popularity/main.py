"""popularity: rank items by weighted event counts (the popularity baseline of a recommender).

A pedigree plugin (see plugin.yaml). Python 3.11 standard library only.

Inputs
  events    a UTF-8 CSV with at least the columns `item_id` and `event` (`user_id` optional,
            used only to count users). Event names are matched exactly against `weights`:
            normalise them first (csv-clean). Rows with an empty item_id, and events with no
            weight, are skipped and counted in the facets.
  items     a UTF-8 CSV with at least `item_id` and `category`. An item missing from it, or
            with an empty category, is in category `unknown`. For an item_id listed twice the
            first row counts.
Outputs
  ranking   ranking.csv: the top `top` items, columns
            rank,item_id,category,score,events,n_<event> (one count column per weighted event
            type, in the order of `weights`). score = sum over event types of count * weight.
            Order: score descending, then item_id ascending; rank is 1, 2, 3, ...
  report    report.md: a summary, the top items and the totals per category (over all scored
            items, not only the top).
Params
  weights   map  event -> weight (number); replaces the default
                 {view: 1, click: 2, cart: 3, purchase: 5} as a whole
  top       int  how many items the ranking and report list (>= 1), default 20

Also writes, in the working directory,
  metrics.json  n_events, n_events_scored, n_items_scored, n_categories, n_users (when the
                events have user_id), top1_score, total_score, top_score_share
  facets.json   rows_in, events_scored, events_without_item, ignored_events {event: count},
                items_not_in_catalogue, items_without_category, duplicate_catalogue_ids

Exit status 0 on success. A bad request or param, an unreadable input, a missing header, a
missing required column or a row with the wrong number of fields: a message on stderr,
exit status 1.
"""

from __future__ import annotations

import csv
import json
import os
import sys
from pathlib import Path

PLUGIN = "popularity"
DEFAULTS = {"weights": {"view": 1, "click": 2, "cart": 3, "purchase": 5}, "top": 20}
UNKNOWN_CATEGORY = "unknown"


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


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def read_params(request: dict) -> dict:
    """Params from the request, defaults applied and validated."""
    params = dict(DEFAULTS)
    params.update(request.get("params") or {})
    for unknown in sorted(set(params) - set(DEFAULTS)):
        print(f"{PLUGIN}: warning: ignoring unknown param '{unknown}'", file=sys.stderr)
    weights = params["weights"]
    if not isinstance(weights, dict) or not weights or not all(
        is_number(w) for w in weights.values()
    ):
        raise PluginError(
            f"param 'weights' must be a non-empty map of event -> number, got {weights!r}"
        )
    top = params["top"]
    if not isinstance(top, int) or isinstance(top, bool) or top < 1:
        raise PluginError(f"param 'top' must be an integer >= 1, got {top!r}")
    return {"weights": {str(k): v for k, v in weights.items()}, "top": top}


# ---------------------------------------------------------------------------- input


def read_table(slot: str, path: str,
               required: list[str]) -> tuple[dict[str, int], list[list[str]]]:
    """Column index and rows of a CSV input; checks the required columns and row widths."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise PluginError(f"input '{slot}' ({path}) is empty or has no header row")
            for col in required:
                if col not in header:
                    raise PluginError(
                        f"input '{slot}' ({path}) has no column '{col}'; "
                        f"its columns are: {', '.join(header)}"
                    )
            body = []
            for row in reader:
                if not row:
                    continue
                if len(row) != len(header):
                    raise PluginError(
                        f"input '{slot}' ({path}) line {reader.line_num}: {len(row)} fields, "
                        f"the header has {len(header)}"
                    )
                body.append(row)
    except OSError as e:
        raise PluginError(f"cannot read input '{slot}' ({path}): {e}") from e
    except csv.Error as e:
        raise PluginError(f"input '{slot}' ({path}) line {reader.line_num}: {e}") from e
    except UnicodeDecodeError as e:
        raise PluginError(f"input '{slot}' ({path}) is not UTF-8 text: {e}") from e
    return {name: i for i, name in enumerate(header)}, body


# ---------------------------------------------------------------------------- scoring


def clean_number(x: float) -> int | float:
    """An int when integral, else the float rounded to hide summation noise (JSON-friendly)."""
    return int(x) if float(x).is_integer() else round(x, 10)


def fmt(x: float) -> str:
    """A number for CSV and Markdown: `12`, `2.5`."""
    x = clean_number(x)
    return str(x) if isinstance(x, int) else f"{x:.10g}"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def md(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|") or " "


def score(events_path: str, items_path: str, weights: dict, top: int) -> dict:
    """Everything the outputs are made from."""
    ev_idx, ev_rows = read_table("events", events_path, ["item_id", "event"])
    it_idx, it_rows = read_table("items", items_path, ["item_id", "category"])

    catalogue: dict[str, str] = {}
    duplicate_ids = 0
    for row in it_rows:
        item_id = row[it_idx["item_id"]]
        if item_id in catalogue:
            duplicate_ids += 1
        else:
            catalogue[item_id] = row[it_idx["category"]].strip()

    counts: dict[str, dict[str, int]] = {}  # item -> event -> count
    ignored: dict[str, int] = {}
    without_item = 0
    users: set[str] = set()
    i_item, i_event, i_user = ev_idx["item_id"], ev_idx["event"], ev_idx.get("user_id")
    for row in ev_rows:
        item_id, event = row[i_item], row[i_event]
        if not item_id.strip():
            without_item += 1
            continue
        if event not in weights:
            ignored[event] = ignored.get(event, 0) + 1
            continue
        per_item = counts.setdefault(item_id, {})
        per_item[event] = per_item.get(event, 0) + 1
        if i_user is not None and row[i_user].strip():
            users.add(row[i_user])

    scored = []
    for item_id, per_item in counts.items():
        category = catalogue.get(item_id) or UNKNOWN_CATEGORY
        # Rounded so that float noise (0.1 * 3 vs 0.3) cannot break the item_id tie order.
        total = clean_number(sum(per_item.get(e, 0) * w for e, w in weights.items()))
        scored.append({"item_id": item_id, "category": category, "score": total,
                       "events": sum(per_item.values()),
                       "counts": [per_item.get(e, 0) for e in weights]})
    scored.sort(key=lambda s: (-s["score"], s["item_id"]))

    categories: dict[str, dict] = {}
    for s in scored:
        c = categories.setdefault(s["category"], {"items": 0, "events": 0, "score": 0})
        c["items"] += 1
        c["events"] += s["events"]
        c["score"] += s["score"]

    return {
        "rows_in": len(ev_rows),
        "ranking": scored[:top],
        "scored": scored,
        "categories": sorted(categories.items(), key=lambda kv: (-kv[1]["score"], kv[0])),
        "ignored": dict(sorted(ignored.items())),
        "without_item": without_item,
        "n_users": len(users) if i_user is not None else None,
        "not_in_catalogue": sum(1 for s in scored if s["item_id"] not in catalogue),
        "without_category": sum(1 for s in scored
                                if s["item_id"] in catalogue and not catalogue[s["item_id"]]),
        "duplicate_ids": duplicate_ids,
    }


# ---------------------------------------------------------------------------- outputs


def write_ranking(path: str, result: dict, weights: dict) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["rank", "item_id", "category", "score", "events",
                    *[f"n_{e}" for e in weights]])
        for rank, s in enumerate(result["ranking"], start=1):
            w.writerow([rank, s["item_id"], s["category"], fmt(s["score"]), s["events"],
                        *s["counts"]])


def render_report(result: dict, weights: dict) -> str:
    scored, ranking = result["scored"], result["ranking"]
    total = sum(s["score"] for s in scored)
    n_scored_events = sum(s["events"] for s in scored)
    lines = ["# Item popularity", ""]
    weight_text = ", ".join(f"{md(e)} {fmt(w)}" for e, w in weights.items())
    lines.append(
        f"{n_scored_events} of {result['rows_in']} events scored on {len(scored)} items in "
        f"{len(result['categories'])} categories"
        + (f" by {result['n_users']} users" if result["n_users"] is not None else "")
        + f". Weights: {weight_text}."
    )
    skipped = []
    if result["ignored"]:
        detail = ", ".join(f"`{md(e)}` {n}" for e, n in result["ignored"].items())
        n_ignored = sum(result["ignored"].values())
        skipped.append(f"{plural(n_ignored, 'event')} of unweighted types ({detail})")
    if result["without_item"]:
        skipped.append(f"{plural(result['without_item'], 'event')} without item_id")
    if skipped:
        lines += ["", "Skipped: " + "; ".join(skipped) + "."]
    if result["not_in_catalogue"] or result["without_category"]:
        missing = plural(result["not_in_catalogue"], "item")
        lines += ["", f"Category `{UNKNOWN_CATEGORY}`: {missing} not in the catalogue, "
                  f"{result['without_category']} without a category."]

    lines += ["", f"## Top {len(ranking)} items", ""]
    lines.append("| rank | item | category | score | " + " | ".join(md(e) for e in weights) + " |")
    lines.append("|---:|---|---|---:|" + "---:|" * len(weights))
    for rank, s in enumerate(ranking, start=1):
        lines.append(f"| {rank} | {md(s['item_id'])} | {md(s['category'])} | {fmt(s['score'])} | "
                     + " | ".join(str(n) for n in s["counts"]) + " |")
    if ranking:
        share = sum(s["score"] for s in ranking) / total if total else 0.0
        lines += ["", f"The top {len(ranking)} items hold {share:.1%} of the total score "
                  f"({fmt(total)})."]

    lines += ["", "## Categories", "", "| category | items | events | score | share |",
              "|---|---:|---:|---:|---:|"]
    for name, c in result["categories"]:
        share = c["score"] / total if total else 0.0
        lines.append(f"| {md(name)} | {c['items']} | {c['events']} | {fmt(c['score'])} | "
                     f"{share:.1%} |")
    return "\n".join(lines) + "\n"


def write_json(name: str, value: object) -> None:
    with open(name, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, sort_keys=True)
        f.write("\n")


def main() -> int:
    try:
        request = load_request()
        params = read_params(request)
        weights, top = params["weights"], params["top"]
        result = score(slot_path(request, "inputs", "events"),
                       slot_path(request, "inputs", "items"), weights, top)
        ranking_path = slot_path(request, "outputs", "ranking")
        report_path = slot_path(request, "outputs", "report")
        for path in (ranking_path, report_path):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_ranking(ranking_path, result, weights)
        Path(report_path).write_text(render_report(result, weights), encoding="utf-8")
    except PluginError as e:
        print(f"{PLUGIN}: error: {e}", file=sys.stderr)
        return 1

    scored, ranking = result["scored"], result["ranking"]
    total = sum(s["score"] for s in scored)
    metrics = {
        "n_events": result["rows_in"],
        "n_events_scored": sum(s["events"] for s in scored),
        "n_items_scored": len(scored),
        "n_categories": len(result["categories"]),
        "top1_score": clean_number(ranking[0]["score"]) if ranking else 0,
        "total_score": clean_number(total),
        "top_score_share": round(sum(s["score"] for s in ranking) / total, 6) if total else 0,
    }
    if result["n_users"] is not None:
        metrics["n_users"] = result["n_users"]
    write_json("metrics.json", metrics)
    write_json("facets.json", {
        "rows_in": result["rows_in"],
        "events_scored": metrics["n_events_scored"],
        "events_without_item": result["without_item"],
        "ignored_events": result["ignored"],
        "items_not_in_catalogue": result["not_in_catalogue"],
        "items_without_category": result["without_category"],
        "duplicate_catalogue_ids": result["duplicate_ids"],
    })
    best = f"; top item {ranking[0]['item_id']} ({fmt(ranking[0]['score'])})" if ranking else ""
    print(f"{PLUGIN}: {metrics['n_events_scored']} events scored on {len(scored)} items{best}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
