//! `audit`: an auditor's command, offline. `audit verify EXPORT --anchors ANCHORS --jwks
//! JWKS` proves an export is the log that was signed (or names the first position where
//! it is not); `audit balances EXPORT --user ID [--at-position N | --as-of TIME]` replays a
//! user's balances from it. `--json` prints the report as JSON. Exit code 0: verified /
//! answered; 1: the export fails the check; 2: the files could not be read.
//!
//! Everything it does is in the library (`lib.rs`); this file parses and prints.

use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use audit::{balances, parse_anchors, render_balances, render_verify, verify, Point};
use clap::{Parser, Subcommand};
use hash_chain::Jwks;
use ledger::UserId;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Parser)]
#[command(
    name = "audit",
    about = "Checks an export of the ledger's event log offline: the hash chain, the signed anchors, and balances replayed from it"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// Print the report as JSON.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Recompute every hash and link of EXPORT and check it against every anchor.
    Verify {
        /// NDJSON from GET /api/v1/audit/export.
        export: PathBuf,
        /// Anchors: pages of GET /api/v1/audit/anchors, items, or their CloudEvents.
        #[arg(long)]
        anchors: PathBuf,
        /// The anchors' JWKS (GET /api/v1/audit/anchors/jwks), kept from a trusted source.
        #[arg(long)]
        jwks: PathBuf,
    },
    /// Replay a user's balances from EXPORT (which must start at position 1).
    Balances {
        export: PathBuf,
        /// The user's id (a UUID).
        #[arg(long)]
        user: String,
        /// Balances after the event at this position.
        #[arg(long, conflicts_with = "as_of")]
        at_position: Option<u64>,
        /// Balances at this RFC 3339 time.
        #[arg(long)]
        as_of: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("audit: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn open(path: &Path) -> anyhow::Result<BufReader<File>> {
    let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(BufReader::with_capacity(1 << 20, file))
}

fn run(cli: &Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Verify {
            export,
            anchors,
            jwks,
        } => {
            let jwks = Jwks::from_file(jwks).context("reading the JWKS")?;
            let text = std::fs::read_to_string(anchors)
                .with_context(|| format!("reading {}", anchors.display()))?;
            let anchors = parse_anchors(&text).context("reading the anchors")?;
            let report = verify(open(export)?, &anchors, &jwks)?;
            if cli.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{}", render_verify(&report));
            }
            Ok(if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Balances {
            export,
            user,
            at_position,
            as_of,
        } => {
            let user = UserId::parse(user).map_err(|e| anyhow::anyhow!("--user: {e}"))?;
            let point = match (at_position, as_of) {
                (Some(n), _) => Point::Position(*n),
                (None, Some(t)) => Point::Time(
                    OffsetDateTime::parse(t, &Rfc3339)
                        .with_context(|| format!("--as-of {t:?} is not an RFC 3339 time"))?,
                ),
                (None, None) => Point::End,
            };
            match balances(open(export)?, user, point) {
                Ok(report) => {
                    if cli.json {
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        print!("{}", render_balances(&report));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                Err(error) => {
                    if cli.json {
                        let body = serde_json::json!({ "ok": false, "error": error.to_string() });
                        println!("{}", serde_json::to_string_pretty(&body)?);
                    } else {
                        println!("NO ANSWER: {error}");
                    }
                    Ok(ExitCode::FAILURE)
                }
            }
        }
    }
}
