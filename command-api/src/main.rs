//! command-api: the HTTP commands of API.md. Parses and authorises a request, loads the
//! streams it touches, runs `ledger::decide` and appends the resulting events (with the
//! idempotency record and e-mail claims) in one atomic append. Never reads projections.

fn main() {
    println!("command-api: not built yet");
}
