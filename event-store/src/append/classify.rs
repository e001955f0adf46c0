//! The pure half of reading a round's reply: from which statement failed and how, what
//! the batch does next. Nothing here touches a connection; the unit tests cover every
//! ending, the lost ones included.

use super::plan::{Role, Round};
use crate::error::{
    duplicate_key, foreign_key, mariadb_code, ER_CHECKREAD, ER_DUP_ENTRY, ER_LOCK_DEADLOCK,
    ER_LOCK_WAIT_TIMEOUT, ER_NO_REFERENCED_ROW,
};

/// How a round trip failed, stripped of the driver's types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Fault {
    /// The connection broke, or no reply came within the read limit: what the server did
    /// with what it received is not known.
    Lost,
    /// The server answered with an error: the statement did nothing.
    Refused {
        code: Option<u16>,
        /// The key a duplicate-key error names.
        key: Option<String>,
        /// The constraint a foreign-key error names.
        constraint: Option<String>,
    },
}

impl Fault {
    pub(super) fn of(e: &sqlx::Error) -> Self {
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolClosed
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::WorkerCrashed => Fault::Lost,
            _ => Fault::Refused {
                code: mariadb_code(e),
                key: duplicate_key(e).map(str::to_owned),
                constraint: foreign_key(e).map(str::to_owned),
            },
        }
    }
}

/// Why one append of a round failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Why {
    /// One of its event ids is in the log already.
    DuplicateEventId,
    /// A stream version it planned is taken or its predecessor missing.
    VersionClash,
    /// Its claim `j` is held.
    ClaimTaken(usize),
    /// Anything else the server refused.
    Other,
}

/// What the batch does after a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Step {
    /// Every statement ran, the commit included.
    Committed,
    /// The round trip that carried the commit broke: whether it committed must be settled
    /// from the log before anyone is answered.
    Unknown,
    /// Nothing committed and nothing of the transaction is worth keeping: roll back and
    /// try the batch again.
    Retry,
    /// The head the round planned from is not the log's: items `..keep` stand; read the
    /// head again and plan the rest (`append` first, if one failed) after it.
    StaleHead { keep: usize, append: Option<usize> },
    /// A grouped INSERT of several appends failed and which one is not known: items
    /// `..keep` stand; plan the rest one statement per append.
    Split { keep: usize },
    /// Append `append` (item `keep`) failed for `why`; items before it stand.
    Failed {
        keep: usize,
        append: usize,
        why: Why,
    },
}

/// What to do after `round`, of which `ok` statements succeeded before `fault` (none
/// when every statement ran).
pub(super) fn classify(round: &Round<'_>, ok: usize, fault: Option<&Fault>) -> Step {
    let (code, key, constraint) = match fault {
        None => return Step::Committed,
        Some(Fault::Lost) if round.commits => return Step::Unknown,
        Some(Fault::Lost) => return Step::Retry,
        Some(Fault::Refused {
            code,
            key,
            constraint,
        }) => (*code, key.as_deref(), constraint.as_deref()),
    };
    if matches!(
        code,
        Some(ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT | ER_CHECKREAD)
    ) {
        return Step::Retry;
    }
    let role = round.role(ok);
    let stale = match code {
        Some(ER_DUP_ENTRY) => key == Some("PRIMARY"),
        // The predecessor's position and hash are not a row of the log.
        Some(ER_NO_REFERENCED_ROW) => constraint == Some("events_prev_hash"),
        _ => false,
    };
    let (keep, append) = match role {
        Role::Control | Role::Savepoint | Role::Commit => return Step::Retry,
        Role::Group { from, to } => match round.members(from, to).as_slice() {
            [only] => (round.item_of(*only), *only),
            _ if stale => {
                return Step::StaleHead {
                    keep: from,
                    append: None,
                }
            }
            _ => return Step::Split { keep: from },
        },
        Role::Events(i) | Role::Claim(i, _) | Role::Release(i) => (round.item_of(i), i),
    };
    let is_events = matches!(role, Role::Events(_) | Role::Group { .. });
    if stale && is_events {
        return Step::StaleHead {
            keep,
            append: Some(append),
        };
    }
    let why = match (code, role) {
        (Some(ER_DUP_ENTRY), _) if is_events && key == Some("events_event_id") => {
            Why::DuplicateEventId
        }
        (Some(ER_DUP_ENTRY | ER_NO_REFERENCED_ROW), _) if is_events => Why::VersionClash,
        (Some(ER_DUP_ENTRY), Role::Claim(_, j)) => Why::ClaimTaken(j),
        _ => Why::Other,
    };
    Step::Failed { keep, append, why }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::super::plan::Attempt;
    use super::super::prepare::Prepared;
    use super::super::Head;
    use super::*;
    use crate::event::{AppendRequest, Claim, ClaimOp, EventType, NewEvent};
    use crate::stream::{ExpectedVersion, StreamId};
    use crate::AppendError;
    use time::OffsetDateTime;

    fn append(stream: &str, expected: ExpectedVersion, claim: bool) -> Prepared {
        let mut r = AppendRequest::single(
            StreamId::parse(stream).unwrap(),
            expected,
            vec![NewEvent::new(
                EventType::parse("thing.happened").unwrap(),
                1,
                serde_json::json!({}),
            )],
        );
        if claim {
            r = r.with_claim(ClaimOp::Claim(Claim {
                scope: "s".into(),
                key: stream.as_bytes().to_vec(),
                payload: serde_json::json!({}),
            }));
        }
        Prepared::new(r).unwrap()
    }

    fn refused(code: u16, key: Option<&str>, constraint: Option<&str>) -> Fault {
        Fault::Refused {
            code: Some(code),
            key: key.map(str::to_owned),
            constraint: constraint.map(str::to_owned),
        }
    }

    fn attempt<'a>(appends: &'a [&'a Prepared], open_tx: bool) -> Attempt<'a> {
        Attempt::new(
            appends,
            Head::genesis(),
            open_tx,
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    #[test]
    fn a_lone_insert_commits_by_itself_and_its_lost_reply_is_unknown() {
        let a = append("a-1", ExpectedVersion::NoStream, false);
        let b = append("b-1", ExpectedVersion::NoStream, false);
        let appends = [&a, &b];
        let round = attempt(&appends, false).plan();
        assert!(round.single && round.commits);
        assert_eq!(round.roles, [Role::Group { from: 0, to: 2 }]);
        assert_eq!(classify(&round, 0, None), Step::Committed);
        assert_eq!(classify(&round, 0, Some(&Fault::Lost)), Step::Unknown);
    }

    #[test]
    fn a_lost_reply_to_any_committing_round_is_unknown_wherever_it_broke() {
        let a = append("a-1", ExpectedVersion::NoStream, true);
        let b = append("b-1", ExpectedVersion::NoStream, false);
        let appends = [&a, &b];
        let round = attempt(&appends, false).plan();
        assert!(!round.single && round.commits);
        assert_eq!(round.roles.first(), Some(&Role::Control));
        assert_eq!(round.roles.last(), Some(&Role::Commit));
        for ok in 0..round.roles.len() {
            assert_eq!(classify(&round, ok, Some(&Fault::Lost)), Step::Unknown);
        }
    }

    #[test]
    fn a_lost_connection_with_nothing_sent_to_commit_is_retried() {
        let appends: [&Prepared; 0] = [];
        let round = attempt(&appends, false).plan();
        assert!(!round.commits);
        assert_eq!(classify(&round, 0, Some(&Fault::Lost)), Step::Retry);
    }

    #[test]
    fn deadlocks_and_lock_timeouts_retry_the_batch() {
        let a = append("a-1", ExpectedVersion::NoStream, false);
        let appends = [&a];
        let round = attempt(&appends, false).plan();
        for code in [ER_LOCK_DEADLOCK, ER_LOCK_WAIT_TIMEOUT, ER_CHECKREAD] {
            assert_eq!(
                classify(&round, 0, Some(&refused(code, None, None))),
                Step::Retry
            );
        }
    }

    #[test]
    fn a_taken_position_or_a_wrong_predecessor_hash_means_a_stale_head() {
        let a = append("a-1", ExpectedVersion::NoStream, false);
        let b = append("b-1", ExpectedVersion::NoStream, false);
        let appends = [&a, &b];
        let round = attempt(&appends, false).plan();
        let dup = refused(ER_DUP_ENTRY, Some("PRIMARY"), None);
        let link = refused(ER_NO_REFERENCED_ROW, None, Some("events_prev_hash"));
        for fault in [dup, link] {
            assert_eq!(
                classify(&round, 0, Some(&fault)),
                Step::StaleHead {
                    keep: 0,
                    append: None
                }
            );
        }
    }

    #[test]
    fn a_group_that_fails_otherwise_is_split_and_a_lone_member_is_named() {
        let a = append("a-1", ExpectedVersion::NoStream, false);
        let b = append("b-1", ExpectedVersion::NoStream, false);
        let appends = [&a, &b];
        let round = attempt(&appends, false).plan();
        let clash = refused(ER_DUP_ENTRY, Some("events_stream_version"), None);
        assert_eq!(classify(&round, 0, Some(&clash)), Step::Split { keep: 0 });

        let lone = [&a];
        let round = attempt(&lone, false).plan();
        assert_eq!(
            classify(&round, 0, Some(&clash)),
            Step::Failed {
                keep: 0,
                append: 0,
                why: Why::VersionClash
            }
        );
        let dup_id = refused(ER_DUP_ENTRY, Some("events_event_id"), None);
        assert_eq!(
            classify(&round, 0, Some(&dup_id)),
            Step::Failed {
                keep: 0,
                append: 0,
                why: Why::DuplicateEventId
            }
        );
    }

    #[test]
    fn a_held_claim_fails_its_own_append_and_the_ones_before_stand() {
        let a = append("a-1", ExpectedVersion::NoStream, true);
        let b = append("b-1", ExpectedVersion::NoStream, true);
        let appends = [&a, &b];
        let mut attempt = attempt(&appends, false);
        let round = attempt.plan();
        // BEGIN, SAVEPOINT u0, events 0, claim 0, SAVEPOINT u1, events 1, claim 1, COMMIT
        let claim_b = round
            .roles
            .iter()
            .position(|r| *r == Role::Claim(1, 0))
            .unwrap();
        let step = classify(
            &round,
            claim_b,
            Some(&refused(ER_DUP_ENTRY, Some("PRIMARY"), None)),
        );
        assert_eq!(
            step,
            Step::Failed {
                keep: 1,
                append: 1,
                why: Why::ClaimTaken(0)
            }
        );
        let failed = attempt.keep_before(round, 1, Some(1));
        assert!(failed.is_some_and(|p| p.has_savepoint));
        attempt.fail(1, AppendError::Invalid("claim".into()));
        assert!(attempt.open_tx);
        // The next round rolls the failed append back and commits the first.
        let round = attempt.plan();
        assert_eq!(
            round.roles,
            [Role::Control, Role::Commit],
            "ROLLBACK TO SAVEPOINT u1; COMMIT"
        );
        let (results, head) = attempt.committed(round);
        assert!(results[0].is_ok());
        assert!(results[1].is_err());
        assert_eq!(head.position, 1);
    }

    #[test]
    fn probes_name_the_planned_position_and_hash_of_every_append_in_the_transaction() {
        let a = append("a-1", ExpectedVersion::NoStream, false);
        let b = append("b-1", ExpectedVersion::NoStream, false);
        let appends = [&a, &b];
        let mut attempt = attempt(&appends, false);
        let round = attempt.plan();
        let probes = attempt.probes(&round);
        assert_eq!(
            probes.iter().map(|p| p.position).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_ne!(probes[0].hash, probes[1].hash);
        let (results, _) = attempt.committed(round);
        let positions: Vec<u64> = results
            .iter()
            .map(|r| r.as_ref().unwrap().streams[0].position)
            .collect();
        assert_eq!(positions, [1, 2]);
    }
}
