//! The `private_key_jwt` replay guard: every assertion id is recorded in the shared database
//! before the assertion is accepted (RFC 7523 §3 item 7), so one assertion is accepted once on
//! all replicas together.
//!
//! Writes are group-committed: requests hand their `(client, jti)` to one writer task, which
//! takes everything that queued while its previous write ran and records it with one `INSERT …
//! ON CONFLICT DO NOTHING RETURNING` in one transaction. Under load one commit serves many
//! requests; alone, a request waits for one write, as it would without the batching. Nothing
//! waits on a timer.

use std::collections::HashMap;

use tokio::sync::{mpsc, oneshot};

use crate::oauth::ClientId;
use crate::store::Store;

/// Most ids in one write.
pub const MAX_BATCH: usize = 512;

/// Requests waiting for the writer, at most (beyond: refused as "retry", never accepted).
pub const MAX_QUEUED: usize = 8192;

/// How long a request waits for its id to be recorded.
pub const WRITE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The database could not say whether the id is new: the assertion must not be accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotRecorded;

struct Pending {
    client: ClientId,
    jti: String,
    expires_at: i64,
    reply: oneshot::Sender<Result<bool, NotRecorded>>,
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl ReplayGuard {
    /// Start the writer task on `store` (it ends when every handle is dropped).
    pub fn spawn(store: Store) -> Self {
        let (tx, mut rx) = mpsc::channel::<Pending>(MAX_QUEUED);
        tokio::spawn(async move {
            let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
            while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
                write(&store, std::mem::take(&mut batch)).await;
            }
        });
        Self { tx }
    }

    /// Record `jti` of `client` until `expires_at`: `Ok(true)` if it is new, `Ok(false)` if it
    /// was seen before (a replay), `Err` if the database could not be asked.
    pub async fn record(
        &self,
        client: &ClientId,
        jti: &str,
        expires_at: i64,
    ) -> Result<bool, NotRecorded> {
        let (reply, answer) = oneshot::channel();
        let pending = Pending {
            client: client.clone(),
            jti: jti.to_owned(),
            expires_at,
            reply,
        };
        self.tx.try_send(pending).map_err(|_| NotRecorded)?;
        // A write that outlives the wait may still record the id: the assertion is then refused
        // (503) though recorded, never accepted twice.
        match tokio::time::timeout(WRITE_WAIT, answer).await {
            Ok(Ok(answer)) => answer,
            _ => Err(NotRecorded),
        }
    }
}

/// One group commit. An id given twice in one batch is new for the first request only.
async fn write(store: &Store, batch: Vec<Pending>) {
    let mut first: HashMap<(ClientId, String), usize> = HashMap::with_capacity(batch.len());
    let mut rows = Vec::with_capacity(batch.len());
    let mut duplicates = Vec::new();
    for p in batch {
        let key = (p.client.clone(), p.jti.clone());
        if first.contains_key(&key) {
            duplicates.push(p);
            continue;
        }
        first.insert(key, rows.len());
        rows.push(p);
    }
    let values: Vec<(ClientId, String, i64)> = rows
        .iter()
        .map(|p| (p.client.clone(), p.jti.clone(), p.expires_at))
        .collect();
    match store.record_assertion_jtis(&values).await {
        Ok(fresh) if fresh.len() == rows.len() => {
            for (p, new) in rows.into_iter().zip(fresh) {
                let _ = p.reply.send(Ok(new));
            }
            for p in duplicates {
                let _ = p.reply.send(Ok(false));
            }
        }
        other => {
            if let Err(e) = other {
                tracing::warn!(error = %e, "cannot record client assertion ids");
            }
            for p in rows.into_iter().chain(duplicates) {
                let _ = p.reply.send(Err(NotRecorded));
            }
        }
    }
}
