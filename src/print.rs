//! Text and JSON output of the CLI commands.

use tessera_server::admin::{ClientView, KeyView, TrustView};
use tessera_server::audit::AuditEvent;

use crate::cli::Output;

pub(crate) fn emit(view: &ClientView, output: Output) -> anyhow::Result<()> {
    if output == Output::Json {
        println!("{}", serde_json::to_string(view)?);
    } else {
        print_client(view);
    }
    Ok(())
}

pub(crate) fn print_client(v: &ClientView) {
    println!("client_id:     {}", v.client_id);
    println!("name:          {}", v.name);
    println!("enabled:       {}", v.enabled);
    println!("scopes:        {}", v.scopes.join(" "));
    println!(
        "audiences:     {}",
        if v.audiences.is_empty() {
            "(issuer)".into()
        } else {
            v.audiences.join(" ")
        }
    );
    println!("token_ttl:     {}s", v.token_ttl);
    println!("auth_method:   {}", v.token_endpoint_auth_method);
    if let Some(q) = v.max_tokens_per_minute {
        println!("token_quota:   {q}/min");
    }
    for (k, val) in &v.claims {
        println!("claim:         {k}={val}");
    }
    if let Some(uri) = &v.jwks_uri {
        println!("jwks_uri:      {uri}");
    }
    if v.jwks.is_some() {
        println!(
            "key_ids:       {}",
            if v.key_ids.is_empty() {
                "(keys without kid)".to_owned()
            } else {
                v.key_ids.join(" ")
            }
        );
    }
    for s in &v.secrets {
        let state = match (s.revoked_at, s.expires_at) {
            (Some(_), _) => "revoked".to_string(),
            (None, Some(e)) => format!("expires {e}"),
            (None, None) => "active".to_string(),
        };
        println!(
            "secret:        {} (created {}, {state})",
            s.id, s.created_at
        );
    }
}

/// The `keys list` table.
pub(crate) fn print_keys(list: &[KeyView]) {
    println!(
        "{:<44} {:<6} {:<9} {:<12} {:<12} {:<12} PRIVATE KEY",
        "KID", "ALG", "STATE", "CREATED", "ACTIVATES", "RETIRES"
    );
    for k in list {
        let retires = k
            .retires_at
            .map_or_else(|| "-".to_string(), |r| r.to_string());
        println!(
            "{:<44} {:<6} {:<9} {:<12} {:<12} {retires:<12} {}",
            k.kid,
            k.alg,
            k.state.as_str(),
            k.created_at,
            k.activates_at,
            k.private_key_state.as_str()
        );
    }
}

/// The `audit list` table.
pub(crate) fn print_audit(events: &[AuditEvent]) {
    println!(
        "{:<12} {:<14} {:<22} {:<26} DETAIL",
        "AT", "ACTOR", "ACTION", "CLIENT_ID"
    );
    for e in events {
        println!(
            "{:<12} {:<14} {:<22} {:<26} {}",
            e.at,
            e.actor,
            e.action,
            e.client_id.as_deref().unwrap_or("-"),
            e.detail
        );
    }
}

/// `trust show`.
pub(crate) fn print_trust(t: &TrustView) {
    println!("trust:         {} ({})", t.name, t.id);
    if let Some(iss) = &t.issuer {
        println!("issuer:        {iss}");
    }
    if let Some(d) = &t.spiffe_trust_domain {
        println!("trust_domain:  {d}");
    }
    println!("audience:      {}", t.audience);
    println!("subject:       {}", t.subject);
    for (k, v) in &t.claims {
        println!("claim:         {k}={}", v.as_str().unwrap_or_default());
    }
    match &t.jwks_uri {
        Some(u) => println!("keys:          {u}"),
        None => println!("keys:          {}", t.keys_from),
    }
    if let Some(age) = t.max_token_age {
        println!("max_token_age: {age}s");
    }
    println!("client_id:     {}", t.client_id);
}
