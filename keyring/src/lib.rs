//! Envelope encryption of personal data: a data key per user, wrapped by a versioned
//! master key; destroying a user's data key shreds their personal data everywhere.
//!
//! Knows nothing of HTTP or of the ledger.
