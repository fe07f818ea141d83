//! What can stop the consensus layer, typed. Every variant's message is what an operator
//! reads in the log when start-up is refused or the node stops (fail-stop: the process
//! exits when the node does).

use crate::consensus::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// The log or the snapshot files.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// raft-rs refused a step the node depends on (config, campaign, restore, conf change).
    #[error("{what}: {source}")]
    Raft {
        what: String,
        #[source]
        source: raft::Error,
    },
    /// `RaftOptions` that cannot work (myid 0, no voters, no quorum address, ...).
    #[error("raft: {0}")]
    Options(String),
    /// A committed entry that is not what every replica can apply: the node stops rather
    /// than skip it (replicas would diverge).
    #[error("{what} {index} (term {term}) {why}")]
    BadEntry {
        what: &'static str,
        index: u64,
        term: u64,
        why: String,
    },
    /// The state on disk cannot be recovered into a whole state (see `node::recovery`).
    #[error("{0}")]
    Unrecoverable(String),
    /// The state machine refused a snapshot.
    #[error("{0}")]
    StateMachine(crate::proto::Error),
    /// A thread, runtime or socket the node needs could not be had.
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A helper thread (recovery, snapshot writer) ended without an answer.
    #[error("{0}")]
    ThreadDied(&'static str),
}

impl ConsensusError {
    pub(crate) fn raft(what: impl Into<String>, source: raft::Error) -> ConsensusError {
        ConsensusError::Raft {
            what: what.into(),
            source,
        }
    }

    pub(crate) fn io(what: impl Into<String>, source: std::io::Error) -> ConsensusError {
        ConsensusError::Io {
            what: what.into(),
            source,
        }
    }
}

impl From<crate::proto::Error> for ConsensusError {
    fn from(e: crate::proto::Error) -> ConsensusError {
        ConsensusError::StateMachine(e)
    }
}

/// The server's error type carries it as text (its callers log it and stop).
impl From<ConsensusError> for crate::proto::Error {
    fn from(e: ConsensusError) -> crate::proto::Error {
        match e {
            ConsensusError::StateMachine(e) => e,
            other => crate::proto::Error::Other(other.to_string()),
        }
    }
}
