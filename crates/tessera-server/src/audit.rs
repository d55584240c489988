//! Who changed what: the actor of an admin change and the audit record written with it.

use std::fmt;

use crate::oauth::ClientId;
pub use crate::store::AuditEvent;

/// Who makes a change, as its audit record names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Actor {
    /// An operator at the CLI, by OS user name.
    Operator(String),
    /// The server's own scheduled work (key rotation on a schedule).
    Server,
    /// A caller of the admin API, by the client id its access token was issued to.
    Client(String),
}

impl Actor {
    /// The OS user running this process (`USER`, else `LOGNAME`): the CLI's operator.
    pub fn os_user() -> Self {
        Self::Operator(
            std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "unknown".into()),
        )
    }

    /// The audit record of `action` by this actor. `detail` must never hold a secret or a token.
    pub fn record(
        &self,
        action: &str,
        client_id: Option<&ClientId>,
        detail: serde_json::Value,
        now: i64,
    ) -> AuditEvent {
        AuditEvent {
            at: now,
            actor: self.to_string(),
            action: action.to_owned(),
            client_id: client_id.map(ToString::to_string),
            detail,
        }
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Operator(user) => f.write_str(user),
            Self::Server => f.write_str("tessera-server"),
            Self::Client(id) => f.write_str(id),
        }
    }
}

/// Emit a committed change as a `tessera::audit` event (its row was written with the change).
pub fn announce(e: &AuditEvent) {
    tracing::info!(target: "tessera::audit", event = "admin_change", actor = %e.actor, action = %e.action,
        client_id = e.client_id.as_deref().unwrap_or_default(), detail = %e.detail, "admin change");
}
