//! `pedigree sample-data`: write a synthetic e-commerce log with known faults.

use std::path::PathBuf;

use super::{CliError, Exit};
use crate::sample::{Config, generate};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// How many users (a few of them bots).
    #[arg(long, default_value_t = 1000)]
    pub users: u32,
    /// How many items in the catalogue.
    #[arg(long, default_value_t = 1000)]
    pub items: u32,
    /// How many event rows, faults and duplicates included.
    #[arg(long, default_value_t = 100_000)]
    pub events: u64,
    /// The random seed; the same seed gives the same bytes.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
    /// The folder to write `events.csv`, `items.csv` and `manifest.json` into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

pub async fn run(args: Args) -> Result<Exit, CliError> {
    let cfg = Config {
        users: args.users,
        items: args.items,
        events: args.events,
        seed: args.seed,
    };
    let m = generate(cfg, &args.out).map_err(|e| CliError::invalid(format!("error: {e}")))?;
    let faulty: u64 = m.faults.values().sum();
    println!(
        "wrote {} events ({} with a fault or duplicated, {} by {} bots) and {} items to `{}`; the exact counts are in `manifest.json`",
        m.files["events.csv"],
        faulty,
        m.bots.rows,
        m.bots.users,
        m.files["items.csv"],
        args.out.display()
    );
    Ok(Exit::Ok)
}
