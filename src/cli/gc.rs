//! `pedigree gc` and `pedigree verify`: flags and output; the work is in
//! [`crate::maintenance`].

use std::time::Duration;

use super::{CliError, Exit, Global, open_existing, open_read, print_json};
use crate::maintenance;

#[derive(Debug, clap::Args)]
pub struct GcArgs {
    /// Keep everything referenced by runs younger than this many seconds, and every
    /// unreferenced object younger than it (a run may be about to record it).
    #[arg(long, default_value_t = 7 * 24 * 3600, value_name = "SECS")]
    pub grace: u64,
    /// Say what would be removed without removing it.
    #[arg(long)]
    pub dry_run: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct VerifyArgs {
    #[arg(long)]
    pub json: bool,
}

pub async fn gc(args: GcArgs, g: &Global) -> Result<Exit, CliError> {
    let ws = open_existing(g).await?;
    let done = maintenance::gc::collect(&ws, Duration::from_secs(args.grace), args.dry_run).await?;
    if args.json {
        print_json(&done);
    } else {
        let verb = if done.dry_run {
            "would remove"
        } else {
            "removed"
        };
        println!(
            "{verb} {} objects ({} bytes)",
            done.removed.len(),
            done.bytes
        );
    }
    Ok(Exit::Ok)
}

pub async fn verify(args: VerifyArgs, g: &Global) -> Result<Exit, CliError> {
    let ws = open_read(g).await?;
    let v = maintenance::verify::verify(&ws).await?;
    if args.json {
        print_json(&v);
    } else {
        for p in &v.problems {
            println!("problem: {p}");
        }
        println!(
            "checked {} objects: {} problems",
            v.objects,
            v.problems.len()
        );
    }
    Ok(if v.problems.is_empty() {
        Exit::Ok
    } else {
        Exit::Failure
    })
}
