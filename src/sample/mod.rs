//! The sample-data generator behind `pedigree sample-data`: an e-commerce behaviour log
//! shaped like a real shop's, with the faults real logs have, each injected into a known
//! set of rows and counted exactly in `manifest.json`.
//!
//! Shape: items in categories with log-normal prices and Zipf-like popularity; users with
//! latent preferences over categories and log-normal activity; sessions that walk a
//! view → click → cart → purchase funnel, spread over six months. Each user's events are
//! at least five seconds apart, so no natural pair of events is a duplicate or a re-send.
//!
//! Faults are injected into disjoint sets of ordinary rows (a row has at most one fault,
//! and duplicates are copies of fault-free rows), so each count in the manifest is what
//! the matching rule of `clean`, `dedupe` or `impute` must report, no more and no less.
//! The random source is a hand-written xoshiro256** seeded by SplitMix64, so a seed gives
//! the same bytes on every platform and every version of every dependency.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use serde::Serialize;

/// What to generate.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Config {
    pub users: u32,
    pub items: u32,
    pub events: u64,
    pub seed: u64,
}

/// Start and end (exclusive) of the log, in Unix seconds: 2024-01-01 to 2024-07-01.
pub const START: i64 = 1_704_067_200;
pub const END: i64 = 1_719_792_000;
/// The most events a normal user has before faults and duplicates are added.
pub const NORMAL_USER_MAX_EVENTS: u64 = 400;
/// The fewest events a bot has.
pub const BOT_MIN_EVENTS: u64 = 2000;

const CATEGORIES: &[(&str, f64)] = &[
    ("electronics", 250.0),
    ("books", 15.0),
    ("fashion", 40.0),
    ("home", 60.0),
    ("toys", 25.0),
    ("sports", 50.0),
    ("beauty", 20.0),
    ("grocery", 8.0),
];
const EVENTS: &[&str] = &["view", "click", "cart", "purchase"];
const UNKNOWN_EVENTS: &[&str] = &["wishlist", "share", "compare", "refund"];

/// Fault rates, as fractions of all event rows.
const RATES: &[(Fault, f64)] = &[
    (Fault::MissingUserId, 0.003),
    (Fault::MissingItemId, 0.003),
    (Fault::MissingPrice, 0.01),
    (Fault::MissingEventCategory, 0.005),
    (Fault::UnknownEventType, 0.003),
    (Fault::EventCaseVariant, 0.01),
    (Fault::NegativePrice, 0.002),
    (Fault::AbsurdPrice, 0.001),
    (Fault::UnixTimestamp, 0.05),
    (Fault::FutureTimestamp, 0.001),
    (Fault::WhitespaceUserId, 0.005),
    (Fault::WhitespaceItemId, 0.005),
];
const EXACT_DUPLICATE_RATE: f64 = 0.01;
const RESENT_RATE: f64 = 0.005;
/// Bots' rows are at most this fraction of the log.
const BOT_SHARE: f64 = 0.08;

/// A fault of one row (the `None` row is an ordinary event).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Fault {
    None,
    MissingUserId,
    MissingItemId,
    MissingPrice,
    MissingEventCategory,
    UnknownEventType,
    EventCaseVariant,
    NegativePrice,
    AbsurdPrice,
    UnixTimestamp,
    FutureTimestamp,
    WhitespaceUserId,
    WhitespaceItemId,
    /// The source of an exact duplicate (written twice).
    Duplicated,
    /// The source of a re-send one second later.
    Resent,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::None => "none",
            Fault::MissingUserId => "missing_user_id",
            Fault::MissingItemId => "missing_item_id",
            Fault::MissingPrice => "missing_price",
            Fault::MissingEventCategory => "missing_event_category",
            Fault::UnknownEventType => "unknown_event_type",
            Fault::EventCaseVariant => "event_case_variant",
            Fault::NegativePrice => "negative_price",
            Fault::AbsurdPrice => "absurd_price",
            Fault::UnixTimestamp => "unix_timestamp",
            Fault::FutureTimestamp => "future_timestamp",
            Fault::WhitespaceUserId => "whitespace_user_id",
            Fault::WhitespaceItemId => "whitespace_item_id",
            Fault::Duplicated => "exact_duplicate",
            Fault::Resent => "resent_within_1s",
        }
    }

    /// Whether the row reaches the output of clean → dedupe.
    fn survives(self) -> bool {
        matches!(
            self,
            Fault::None
                | Fault::MissingPrice
                | Fault::MissingEventCategory
                | Fault::EventCaseVariant
                | Fault::UnixTimestamp
                | Fault::WhitespaceUserId
                | Fault::WhitespaceItemId
                | Fault::Duplicated
                | Fault::Resent
        )
    }
}

/// The sample generator's view of [`crate::util::rng::Rng`]: `below` and `shuffle`
/// are the 128-bit range map, whose stream the committed sample pins.
struct Rng(crate::util::rng::Rng);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(crate::util::rng::Rng::new(seed))
    }

    /// Uniform in [0, 1).
    fn f64(&mut self) -> f64 {
        self.0.unit()
    }

    /// Uniform in [0, n).
    fn below(&mut self, n: u64) -> u64 {
        self.0.below_u64(n)
    }

    /// Standard normal (Box–Muller).
    fn normal(&mut self) -> f64 {
        self.0.normal()
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        self.0.shuffle_u64(v)
    }

    /// An index drawn with the given cumulative weights.
    fn pick(&mut self, cumulative: &[f64]) -> usize {
        let total = cumulative.last().copied().unwrap_or(0.0);
        let x = self.f64() * total;
        cumulative
            .partition_point(|&c| c <= x)
            .min(cumulative.len() - 1)
    }
}

fn cumulative(w: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    w.into_iter()
        .map(|x| {
            acc += x;
            acc
        })
        .collect()
}

struct Item {
    category: usize,
    /// Shown in items.csv; false for the items without a category.
    categorised: bool,
    price: f64,
}

#[derive(Clone)]
struct Row {
    user: u32,
    item: u32,
    event: u8,
    ts: i64,
    bot: bool,
    fault: Fault,
}

/// What was generated, with exact fault counts (written as `manifest.json`).
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub generator: Config,
    pub window: BTreeMap<&'static str, String>,
    pub files: BTreeMap<&'static str, u64>,
    /// Rows per fault, each row having at most one.
    pub faults: BTreeMap<&'static str, u64>,
    pub items_without_category: u64,
    pub bots: Bots,
    /// Counts that follow from the faults and the data: the events that survive clean
    /// and dedupe and whose item has no category in items.csv.
    pub surviving_events_of_items_without_category: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Bots {
    pub users: u64,
    pub rows: u64,
    /// The fewest rows of one bot, and the most rows of any other user (all rows,
    /// faulty and duplicated ones included): a `clean` outlier threshold between the two
    /// drops exactly the bots.
    pub min_rows_per_bot: u64,
    pub max_rows_per_other_user: u64,
}

fn id(prefix: char, i: u32, width: usize) -> String {
    format!("{prefix}{:0width$}", i + 1)
}

/// Generate `events.csv`, `items.csv` and `manifest.json` into `out`.
pub fn generate(cfg: Config, out: &Path) -> Result<Manifest, String> {
    if cfg.users < 10 || cfg.items < 10 || cfg.events < 1000 {
        return Err("generate at least 10 users, 10 items and 1000 events".into());
    }
    let mut rng = Rng::new(cfg.seed);
    let n = cfg.events;
    let count = |rate: f64| (n as f64 * rate).round() as u64;

    // Catalogue.
    let cat_weights = cumulative(CATEGORIES.iter().map(|_| 1.0));
    let mut items: Vec<Item> = (0..cfg.items)
        .map(|_| {
            let category = rng.pick(&cat_weights);
            let median = CATEGORIES[category].1;
            let price = (median * (0.5 * rng.normal()).exp()).clamp(0.5, 5000.0);
            Item {
                category,
                categorised: true,
                price: (price * 100.0).round() / 100.0,
            }
        })
        .collect();
    let uncategorised = ((cfg.items as f64 * 0.03).round() as u64).max(1);
    let mut order: Vec<u32> = (0..cfg.items).collect();
    rng.shuffle(&mut order);
    for &i in &order[..uncategorised as usize] {
        items[i as usize].categorised = false;
    }
    // Popularity: Zipf over a random ranking, per category.
    rng.shuffle(&mut order);
    let mut by_cat: Vec<Vec<u32>> = vec![Vec::new(); CATEGORIES.len()];
    let mut rank_weight = vec![0.0; cfg.items as usize];
    for (rank, &i) in order.iter().enumerate() {
        rank_weight[i as usize] = 1.0 / (rank as f64 + 2.0);
        by_cat[items[i as usize].category].push(i);
    }
    let cat_items: Vec<(Vec<u32>, Vec<f64>)> = by_cat
        .into_iter()
        .map(|v| {
            let w = cumulative(v.iter().map(|&i| rank_weight[i as usize]));
            (v, w)
        })
        .collect();

    // Bots.
    let mut bots = (cfg.users / 300).max(1) as u64;
    while bots > 0 && bots * (BOT_MIN_EVENTS + 500) > (n as f64 * BOT_SHARE) as u64 {
        bots -= 1;
    }
    let mut user_order: Vec<u32> = (0..cfg.users).collect();
    rng.shuffle(&mut user_order);
    let bot_users: Vec<u32> = user_order[..bots as usize].to_vec();
    let normal_users: Vec<u32> = user_order[bots as usize..].to_vec();
    let bot_rows: Vec<u64> = bot_users
        .iter()
        .map(|_| BOT_MIN_EVENTS + rng.below(1000))
        .collect();
    let bot_total: u64 = bot_rows.iter().sum();

    let dup = count(EXACT_DUPLICATE_RATE);
    let resent = count(RESENT_RATE);
    let base_normal = n
        .checked_sub(bot_total + dup + resent)
        .ok_or("too few events for the bots and duplicates")?;
    let faulty: u64 = RATES.iter().map(|(_, r)| count(*r)).sum();
    if faulty + dup + resent > base_normal {
        return Err("too few events for the faults".into());
    }
    if base_normal > NORMAL_USER_MAX_EVENTS * normal_users.len() as u64 {
        return Err(format!(
            "{} events are too many for {} users (a user has at most {NORMAL_USER_MAX_EVENTS} events); raise --users",
            n, cfg.users
        ));
    }

    // Events per normal user: log-normal activity, capped.
    let activity: Vec<f64> = normal_users.iter().map(|_| rng.normal().exp()).collect();
    let total_a: f64 = activity.iter().sum();
    let mut per_user: Vec<u64> = activity
        .iter()
        .map(|a| ((a / total_a * base_normal as f64) as u64).min(NORMAL_USER_MAX_EVENTS))
        .collect();
    let mut assigned: u64 = per_user.iter().sum();
    let cum_activity = cumulative(activity.iter().copied());
    while assigned < base_normal {
        let u = rng.pick(&cum_activity);
        if per_user[u] < NORMAL_USER_MAX_EVENTS {
            per_user[u] += 1;
            assigned += 1;
        }
    }

    let mut rows: Vec<Row> = Vec::with_capacity(n as usize);
    for (ui, &user) in normal_users.iter().enumerate() {
        let want = per_user[ui];
        if want == 0 {
            continue;
        }
        let prefs = cumulative(CATEGORIES.iter().map(|_| (1.5 * rng.normal()).exp()));
        let sessions = want.div_ceil(4).max(1);
        let span = (END - 3 * 86_400 - START) as u64;
        let mut starts: Vec<i64> = (0..sessions)
            .map(|_| START + rng.below(span) as i64)
            .collect();
        starts.sort_unstable();
        let mut t = START;
        let mut made = 0;
        'sessions: for s in starts {
            t = t.max(s);
            for _ in 0..1 + rng.below(4) {
                let (list, w) = &cat_items[rng.pick(&prefs)];
                if list.is_empty() {
                    continue;
                }
                let item = list[rng.pick(w)];
                for (e, p) in [(0u8, 1.0), (1, 0.35), (2, 0.35), (3, 0.5)] {
                    if e > 0 && rng.f64() >= p {
                        break;
                    }
                    if made == want {
                        break 'sessions;
                    }
                    t += 5 + rng.below(115) as i64;
                    rows.push(Row {
                        user,
                        item,
                        event: e,
                        ts: t,
                        bot: false,
                        fault: Fault::None,
                    });
                    made += 1;
                }
            }
            t += 60;
        }
        // Sessions ran out before the count: the rest is a last long browse.
        while made < want {
            t += 5 + rng.below(115) as i64;
            let (list, w) = &cat_items[rng.pick(&prefs)];
            if list.is_empty() {
                continue;
            }
            rows.push(Row {
                user,
                item: list[rng.pick(w)],
                event: 0,
                ts: t,
                bot: false,
                fault: Fault::None,
            });
            made += 1;
        }
    }
    for (b, &user) in bot_users.iter().enumerate() {
        let mut t = START + rng.below(86_400 * 30) as i64;
        for _ in 0..bot_rows[b] {
            t += 3 + rng.below(8) as i64;
            rows.push(Row {
                user,
                item: rng.below(cfg.items as u64) as u32,
                event: if rng.f64() < 0.9 { 0 } else { 1 },
                ts: t,
                bot: true,
                fault: Fault::None,
            });
        }
    }
    rows.sort_by_key(|r| (r.ts, r.user));

    // Faults on disjoint sets of ordinary rows.
    let mut pool: Vec<usize> = (0..rows.len()).filter(|&i| !rows[i].bot).collect();
    rng.shuffle(&mut pool);
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    // Missing event categories only where the catalogue has one.
    let want = count(0.005);
    let mut taken = 0;
    pool.retain(|&i| {
        if taken < want && items[rows[i].item as usize].categorised {
            rows[i].fault = Fault::MissingEventCategory;
            taken += 1;
            false
        } else {
            true
        }
    });
    faults.insert(Fault::MissingEventCategory.name(), taken);
    let mut next = 0;
    let mut assign = |rows: &mut [Row], fault: Fault, k: u64| {
        for &i in &pool[next..next + k as usize] {
            rows[i].fault = fault;
        }
        next += k as usize;
    };
    for (f, r) in RATES {
        if *f != Fault::MissingEventCategory {
            assign(&mut rows, *f, count(*r));
            faults.insert(f.name(), count(*r));
        }
    }
    assign(&mut rows, Fault::Duplicated, dup);
    faults.insert(Fault::Duplicated.name(), dup);
    assign(&mut rows, Fault::Resent, resent);
    faults.insert(Fault::Resent.name(), resent);

    // Write.
    std::fs::create_dir_all(out).map_err(|e| format!("cannot create `{}`: {e}", out.display()))?;
    let uw = (cfg.users.to_string().len()).max(4);
    let iw = (cfg.items.to_string().len()).max(4);
    let werr = |e: std::io::Error| format!("cannot write the sample data: {e}");
    let mut items_csv =
        std::io::BufWriter::new(std::fs::File::create(out.join("items.csv")).map_err(werr)?);
    writeln!(items_csv, "item_id,category,price").map_err(werr)?;
    for (i, it) in items.iter().enumerate() {
        let cat = if it.categorised {
            CATEGORIES[it.category].0
        } else {
            ""
        };
        writeln!(items_csv, "{},{cat},{:.2}", id('i', i as u32, iw), it.price).map_err(werr)?;
    }
    items_csv.flush().map_err(werr)?;

    let mut ev =
        std::io::BufWriter::new(std::fs::File::create(out.join("events.csv")).map_err(werr)?);
    writeln!(ev, "user_id,item_id,event,ts,price,category").map_err(werr)?;
    let mut per_user_rows: BTreeMap<u32, u64> = BTreeMap::new();
    let mut written = 0u64;
    let mut surviving_uncategorised = 0u64;
    let iso = |ts: i64| crate::table::time::format_millis(ts * 1000);
    for r in &rows {
        let it = &items[r.item as usize];
        let f = r.fault;
        let user = match f {
            Fault::MissingUserId => String::new(),
            Fault::WhitespaceUserId if r.ts % 2 == 0 => format!(" {}", id('u', r.user, uw)),
            Fault::WhitespaceUserId => format!("{}  ", id('u', r.user, uw)),
            _ => id('u', r.user, uw),
        };
        let item = match f {
            Fault::MissingItemId => String::new(),
            Fault::WhitespaceItemId if r.ts % 2 == 0 => format!("{} ", id('i', r.item, iw)),
            Fault::WhitespaceItemId => format!("\t{}", id('i', r.item, iw)),
            _ => id('i', r.item, iw),
        };
        let canon = EVENTS[r.event as usize];
        let event = match f {
            Fault::UnknownEventType => UNKNOWN_EVENTS[rng.below(4) as usize].to_owned(),
            Fault::EventCaseVariant => match rng.below(4) {
                0 => canon.to_uppercase(),
                1 => capitalise(canon),
                2 => format!("{} ", capitalise(canon)),
                _ => format!(" {}", canon.to_uppercase()),
            },
            _ => canon.to_owned(),
        };
        let ts = match f {
            Fault::UnixTimestamp => r.ts.to_string(),
            Fault::FutureTimestamp => iso(r.ts + (5 * 365 + rng.below(3 * 365)) as i64 * 86_400),
            _ => iso(r.ts),
        };
        let price = match f {
            Fault::MissingPrice => String::new(),
            Fault::NegativePrice => format!("-{:.2}", it.price),
            Fault::AbsurdPrice => format!("{:.2}", it.price * 1000.0 + 100_000.0),
            _ => format!("{:.2}", it.price),
        };
        let category = if f == Fault::MissingEventCategory || !it.categorised {
            ""
        } else {
            CATEGORIES[it.category].0
        };
        let line = format!("{user},{item},{event},{ts},{price},{category}");
        writeln!(ev, "{line}").map_err(werr)?;
        let mut copies = 1;
        if f == Fault::Duplicated {
            writeln!(ev, "{line}").map_err(werr)?;
            copies += 1;
        }
        if f == Fault::Resent {
            writeln!(
                ev,
                "{user},{item},{event},{},{price},{category}",
                iso(r.ts + 1)
            )
            .map_err(werr)?;
            copies += 1;
        }
        written += copies;
        *per_user_rows.entry(r.user).or_default() += copies;
        if !r.bot && f.survives() && !it.categorised {
            surviving_uncategorised += 1;
        }
    }
    ev.flush().map_err(werr)?;
    debug_assert_eq!(written, n);

    let bot_set: std::collections::HashSet<u32> = bot_users.iter().copied().collect();
    let manifest = Manifest {
        generator: cfg,
        window: BTreeMap::from([("start", iso(START)), ("end", iso(END))]),
        files: BTreeMap::from([("events.csv", written), ("items.csv", cfg.items as u64)]),
        faults,
        items_without_category: uncategorised,
        bots: Bots {
            users: bots,
            rows: bot_total,
            min_rows_per_bot: bot_rows.iter().copied().min().unwrap_or(0),
            max_rows_per_other_user: per_user_rows
                .iter()
                .filter(|(u, _)| !bot_set.contains(u))
                .map(|(_, c)| *c)
                .max()
                .unwrap_or(0),
        },
        surviving_events_of_items_without_category: surviving_uncategorised,
    };
    let text = serde_json::to_string_pretty(&manifest).map_err(|e| e.to_string())? + "\n";
    std::fs::write(out.join("manifest.json"), text).map_err(werr)?;
    Ok(manifest)
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_bytes_and_counts_add_up() {
        let d = tempfile::tempdir().unwrap();
        let cfg = Config {
            users: 100,
            items: 80,
            events: 5000,
            seed: 3,
        };
        let m = generate(cfg, &d.path().join("a")).unwrap();
        generate(cfg, &d.path().join("b")).unwrap();
        for f in ["events.csv", "items.csv", "manifest.json"] {
            assert_eq!(
                std::fs::read(d.path().join("a").join(f)).unwrap(),
                std::fs::read(d.path().join("b").join(f)).unwrap(),
                "{f}"
            );
        }
        let events = std::fs::read_to_string(d.path().join("a/events.csv")).unwrap();
        assert_eq!(events.lines().count() as u64, 5001);
        assert_eq!(m.files["events.csv"], 5000);
        assert_eq!(m.faults["exact_duplicate"], 50);
        assert!(
            m.bots.min_rows_per_bot == 0
                || m.bots.min_rows_per_bot > m.bots.max_rows_per_other_user
        );
        let e = generate(Config { users: 10, ..cfg }, &d.path().join("c")).unwrap_err();
        assert!(e.contains("raise --users"), "{e}");
    }
}
