//! Prints the OpenAPI document that query-api serves at `/openapi.json`, without a
//! database or a listener:
//!
//! ```sh
//! cargo run -q -p query-api --example query-api-openapi > ui/openapi/query-api.json
//! ```
//!
//! `npm run gen:api` in `ui/` does this and generates the UI's types from the result;
//! `tests/api/openapi.rs` fails when the checked-in copy differs from what is served.
//! An example rather than a subcommand: the binary ships without it (named for its crate:
//! examples of one workspace share an output directory).

use std::io::Write;

fn main() -> anyhow::Result<()> {
    let document = query_api::openapi_document_json();
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &document)?;
    writeln!(out)?;
    Ok(())
}
