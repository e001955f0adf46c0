//! projector: consumes `queue.example.events`, applies events to the read tables and
//! advances its checkpoint in the same transaction; rebuild and verify from the log.
//! Never writes events.

fn main() {
    println!("projector: not built yet");
}
