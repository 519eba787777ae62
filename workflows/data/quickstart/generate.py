#!/usr/bin/env python3
"""Generate the quickstart e-commerce data set (events.csv, items.csv).

A small, deterministic, realistic-looking behaviour log for the README quickstart:

  items.csv   item_id,category,price            ~150 items in 8 categories
  events.csv  user_id,item_id,event,ts,price    ~5,000 events by ~200 users, March 2024

Users browse in sessions: they view items (popular items and their favourite categories more
often), and some views turn into a click, a cart and a purchase. `price` on an event is the
item's listed price at that moment (occasional small price changes).

The log deliberately contains the faults a real tracking pipeline produces, so the cleaning
and de-duplication steps have something to do:

  - missing or blank user_id / item_id (client bugs, logged-out sessions)
  - event names in other cases or with stray whitespace (`VIEW`, `Click `, ` cart`)
  - an unknown event type (`wishlist`, from an app version the schema does not know)
  - negative prices (refunds logged as events) and missing prices
  - double-logged events: exact duplicate rows, some differing only in the event's case,
    so that they only become visible as duplicates after normalisation
  - events for items that are no longer in the catalogue, and catalogue items without category

The output only depends on SEED (Python's `random` with a fixed seed, no set/dict-order or
clock dependence), so rerunning this script reproduces the committed CSVs byte for byte:

    python3 workflows/data/quickstart/generate.py            # writes next to this script
    python3 workflows/data/quickstart/generate.py --out DIR
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import random
from pathlib import Path

SEED = 20240301
N_USERS = 200
N_ITEMS = 150
TARGET_EVENTS = 4850  # clean events before duplicates are injected (~5,000 rows in the end)
START = dt.datetime(2024, 3, 1, 0, 0, 0)
DAYS = 31

# category -> (share of the catalogue, median price)
CATEGORIES = {
    "electronics": (0.16, 180.0),
    "books": (0.16, 14.0),
    "home": (0.14, 45.0),
    "fashion": (0.16, 38.0),
    "beauty": (0.10, 22.0),
    "sports": (0.10, 55.0),
    "toys": (0.09, 25.0),
    "grocery": (0.09, 6.0),
}

# Case/whitespace variants a sloppy client emits for each event name.
VARIANTS = {
    "view": ["VIEW", "View", " view", "view "],
    "click": ["Click ", "CLICK", "Click", " click"],
    "cart": ["Cart", "CART", " cart", "cart "],
    "purchase": ["Purchase", "PURCHASE", "purchase "],
}


def make_items(rng: random.Random) -> list[dict]:
    """The catalogue: item ids i001..i150 with a category and a list price."""
    names = list(CATEGORIES)
    shares = [CATEGORIES[c][0] for c in names]
    items = []
    for n in range(1, N_ITEMS + 1):
        category = rng.choices(names, weights=shares)[0]
        median = CATEGORIES[category][1]
        price = round(median * math.exp(rng.gauss(0.0, 0.45)), 2)
        items.append({"item_id": f"i{n:03d}", "category": category, "price": max(price, 0.99)})
    return items


def make_events(rng: random.Random, items: list[dict]) -> list[dict]:
    """Sessions of view -> click -> cart -> purchase funnels, sorted by time."""
    # Item popularity is long-tailed (Zipf-like over a shuffled order).
    order = list(range(len(items)))
    rng.shuffle(order)
    popularity = [0.0] * len(items)
    for rank, idx in enumerate(order, start=1):
        popularity[idx] = 1.0 / rank**0.7
    by_category: dict[str, list[int]] = {}
    for idx, item in enumerate(items):
        by_category.setdefault(item["category"], []).append(idx)
    categories = list(by_category)

    # Users differ in activity and have one or two favourite categories.
    users = []
    for n in range(1, N_USERS + 1):
        favourites = rng.sample(categories, k=rng.choice([1, 1, 2]))
        activity = math.exp(rng.gauss(0.0, 0.6))
        users.append((f"u{n:03d}", favourites, activity))
    user_weights = [u[2] for u in users]

    events: list[dict] = []
    while len(events) < TARGET_EVENTS:
        user_id, favourites, _ = rng.choices(users, weights=user_weights)[0]
        t = START + dt.timedelta(seconds=rng.randrange(DAYS * 24 * 3600))
        for _ in range(rng.randint(1, 6)):  # items looked at in this session
            if rng.random() < 0.6:
                pool = by_category[rng.choice(favourites)]
            else:
                pool = range(len(items))
            pool = list(pool)
            idx = rng.choices(pool, weights=[popularity[i] for i in pool])[0]
            item = items[idx]
            price = item["price"]
            if rng.random() < 0.05:  # a price change or promotion during the month
                price = round(price * rng.choice([0.8, 0.9, 1.1]), 2)
            funnel = ["view"] * rng.choice([1, 1, 1, 2])
            if rng.random() < 0.42:
                funnel.append("click")
                if rng.random() < 0.35:
                    funnel.append("cart")
                    if rng.random() < 0.5:
                        funnel.append("purchase")
            for event in funnel:
                t += dt.timedelta(seconds=rng.randint(3, 240))
                events.append(
                    {"user_id": user_id, "item_id": item["item_id"], "event": event,
                     "ts": t, "price": f"{price:.2f}"}
                )
    events.sort(key=lambda e: (e["ts"], e["user_id"], e["item_id"]))
    for e in events:
        e["ts"] = e["ts"].strftime("%Y-%m-%dT%H:%M:%SZ")
    return events


def add_faults(rng: random.Random, events: list[dict]) -> list[dict]:
    """Inject the tracking faults described in the module docstring."""
    out: list[dict] = []
    for e in events:
        e = dict(e)
        r = rng.random()
        if r < 0.008:
            e["user_id"] = rng.choice(["", "", " "])
        elif r < 0.016:
            e["item_id"] = ""
        elif r < 0.020:
            e["item_id"] = rng.choice(["i151", "i152", "i153"])  # delisted items
        if rng.random() < 0.005:
            e["event"] = "wishlist"
        if rng.random() < 0.006:
            e["price"] = f"-{e['price']}"  # refund logged as a negative price
        elif rng.random() < 0.008:
            e["price"] = ""
        out.append(e)
        if rng.random() < 0.03:  # double-logged event, written right after the original
            out.append(dict(e))
    # Case variants are applied per row, after duplication: some duplicate pairs then differ
    # only in the event's spelling and are caught by dedupe only after csv-clean normalised it.
    for e in out:
        if e["event"] in VARIANTS and rng.random() < 0.04:
            e["event"] = rng.choice(VARIANTS[e["event"]])
    return out


def write_csv(path: Path, columns: list[str], rows: list[dict]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(columns)
        for row in rows:
            w.writerow([row[c] for c in columns])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent,
                        help="output folder (default: this script's folder)")
    args = parser.parse_args()
    rng = random.Random(SEED)

    items = make_items(rng)
    events = add_faults(rng, make_events(rng, items))

    catalogue = [dict(i, price=f"{i['price']:.2f}") for i in items]
    for idx in rng.sample(range(len(catalogue)), k=3):
        catalogue[idx]["category"] = ""  # not yet categorised by the merchandising team

    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "items.csv", ["item_id", "category", "price"], catalogue)
    write_csv(args.out / "events.csv", ["user_id", "item_id", "event", "ts", "price"], events)
    print(f"wrote {len(catalogue)} items and {len(events)} events to {args.out}")


if __name__ == "__main__":
    main()
