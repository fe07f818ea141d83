//! The session table (a child module of `datatree`): creating and closing sessions (closing
//! deletes the session's ephemerals), the check every client write makes that its session
//! is live, and the queries about sessions and their ephemerals. The ephemerals' path lists
//! themselves are kept by `insert_node` / `remove_node`.

use super::{DataTree, SessionAuth};
use crate::proto::{Id, ZkError};
use crate::tree::{SessionInfo, WatchTrigger};

impl DataTree {
    /// `Txn::CreateSession` (a repeated id keeps its ephemerals and takes the new timeout).
    pub(super) fn create_session(&mut self, session_id: i64, timeout_ms: i32) {
        self.sessions.entry(session_id).or_default().timeout_ms = timeout_ms;
    }

    /// `Txn::SessionAuth`: `server` holds the session's connection, with identities `ids`.
    /// SessionExpired for a session not in the table.
    pub(super) fn set_session_auth(
        &mut self,
        session_id: i64,
        server: u64,
        ids: &[Id],
    ) -> Result<(), ZkError> {
        let session = self
            .sessions
            .get_mut(&session_id)
            .ok_or(ZkError::SessionExpired)?;
        session.auth = Some(SessionAuth {
            server,
            ids: ids.to_vec(),
        });
        Ok(())
    }

    /// The identities `server` recorded for the session, for a write it submits
    /// (`Txn::Owned`): SessionExpired without the session, SessionMoved when another member
    /// (or none) vouched for its connection last.
    pub(super) fn owned_auth(&self, session_id: i64, server: u64) -> Result<Vec<Id>, ZkError> {
        let session = self
            .sessions
            .get(&session_id)
            .ok_or(ZkError::SessionExpired)?;
        match &session.auth {
            Some(a) if a.server == server => Ok(a.ids.clone()),
            _ => Err(ZkError::SessionMoved),
        }
    }

    /// The member holding the session's connection and its identities, as recorded in the
    /// log (`Txn::SessionAuth`).
    pub fn session_auth(&self, session_id: i64) -> Option<(u64, Vec<Id>)> {
        let a = self.sessions.get(&session_id)?.auth.as_ref()?;
        Some((a.server, a.ids.clone()))
    }

    /// SessionExpired unless `session_id` is in the table.
    pub(super) fn check_session(&self, session_id: i64) -> Result<(), ZkError> {
        if self.sessions.contains_key(&session_id) {
            Ok(())
        } else {
            Err(ZkError::SessionExpired)
        }
    }

    /// Removes the session and its ephemerals (in path order), as DataTree.killSession.
    pub(super) fn close_session(
        &mut self,
        session_id: i64,
        zxid: i64,
        triggers: &mut Vec<WatchTrigger>,
    ) {
        let Some(session) = self.sessions.remove(&session_id) else {
            return;
        };
        for path in session.ephemerals {
            self.delete_node(&path, zxid, triggers);
        }
    }

    /// Paths of this session's ephemerals that start with `prefix` ("/" for all), sorted.
    pub fn get_ephemerals(&self, session_id: i64, prefix: &str) -> Vec<String> {
        let Some(session) = self.sessions.get(&session_id) else {
            return vec![];
        };
        // FinalRequestProcessor: a blank or "/" prefix (after Java's trim) means all.
        let trimmed = prefix.trim_matches(|c: char| c <= ' ');
        let all = trimmed.is_empty() || trimmed == "/";
        session
            .ephemerals
            .iter()
            .filter(|p| all || p.starts_with(prefix))
            .map(|p| p.to_string())
            .collect()
    }

    pub fn sessions(&self) -> Vec<SessionInfo> {
        self.sessions
            .iter()
            .map(|(&session_id, s)| SessionInfo {
                session_id,
                timeout_ms: s.timeout_ms,
            })
            .collect()
    }

    pub fn session(&self, session_id: i64) -> Option<SessionInfo> {
        self.sessions.get(&session_id).map(|s| SessionInfo {
            session_id,
            timeout_ms: s.timeout_ms,
        })
    }

    pub fn ephemerals_count(&self) -> usize {
        self.sessions.values().map(|s| s.ephemerals.len()).sum()
    }

    /// Ephemeral paths by session, for the `dump` four-letter word.
    pub fn ephemerals_by_session(&self) -> Vec<(i64, Vec<String>)> {
        self.sessions
            .iter()
            .filter(|(_, s)| !s.ephemerals.is_empty())
            .map(|(&id, s)| (id, s.ephemerals.iter().map(|p| p.to_string()).collect()))
            .collect()
    }
}
