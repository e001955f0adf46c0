//! query-api: the views of API.md over the read tables, read-your-writes waits, and the
//! audit endpoints over the event log. Writes nothing.

fn main() {
    println!("query-api: not built yet");
}
