//! Text and JSON output of the CLI commands. Everything printed is the admin API's JSON (local or
//! remote alike), so the output is the same whichever way a command ran.

use serde_json::Value;

use crate::cli::Output;

/// A string field, or "" when absent.
pub(crate) fn s<'a>(v: &'a Value, name: &str) -> &'a str {
    v[name].as_str().unwrap_or_default()
}

/// A list of strings joined by spaces.
pub(crate) fn words(v: &Value, name: &str) -> String {
    v[name]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// A JSON value as text: strings bare, others as JSON.
fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

/// Print `v` as one JSON line, or as text with `print_text`.
pub(crate) fn emit(v: &Value, output: Output, print_text: fn(&Value)) {
    if output == Output::Json {
        println!("{v}");
    } else {
        print_text(v);
    }
}

pub(crate) fn print_client(v: &Value) {
    println!("client_id:     {}", s(v, "client_id"));
    println!("name:          {}", s(v, "name"));
    println!("enabled:       {}", v["enabled"]);
    println!("scopes:        {}", words(v, "scopes"));
    let audiences = words(v, "audiences");
    println!(
        "audiences:     {}",
        if audiences.is_empty() {
            "(issuer)".into()
        } else {
            audiences
        }
    );
    println!("token_ttl:     {}s", v["token_ttl"]);
    println!("auth_method:   {}", s(v, "token_endpoint_auth_method"));
    if let Some(e) = v["expires_at"].as_str() {
        println!("expires_at:    {e}");
    }
    if let Some(q) = v["max_tokens_per_minute"].as_u64() {
        println!("token_quota:   {q}/min");
    }
    if let Some(claims) = v["claims"].as_object() {
        for (k, val) in claims {
            println!("claim:         {k}={val}");
        }
    }
    if let Some(uri) = v["jwks_uri"].as_str() {
        println!("jwks_uri:      {uri}");
    }
    if !v["jwks"].is_null() {
        let kids = words(v, "key_ids");
        println!(
            "key_ids:       {}",
            if kids.is_empty() {
                "(keys without kid)".to_owned()
            } else {
                kids
            }
        );
    }
    println!("created_at:    {}", s(v, "created_at"));
    for sec in v["secrets"].as_array().into_iter().flatten() {
        let state = match (sec["revoked_at"].as_str(), sec["expires_at"].as_str()) {
            (Some(r), _) => format!("revoked {r}"),
            (None, Some(e)) => format!("expires {e}"),
            (None, None) => "active".to_string(),
        };
        println!(
            "secret:        {} (created {}, {state})",
            s(sec, "id"),
            s(sec, "created_at")
        );
    }
    if let Some(secret) = v["client_secret"].as_str() {
        println!("client_secret: {secret}");
        println!("\nStore the secret now: it is shown only once and cannot be recovered.");
    }
}

/// The `client list` table.
pub(crate) fn print_clients(list: &Value) {
    println!("{:<26} {:<8} {:<24} SCOPES", "CLIENT_ID", "ENABLED", "NAME");
    for c in list.as_array().into_iter().flatten() {
        println!(
            "{:<26} {:<8} {:<24} {}",
            s(c, "client_id"),
            c["enabled"],
            s(c, "name"),
            words(c, "scopes")
        );
    }
}

/// The `keys list` table.
pub(crate) fn print_keys(list: &Value) {
    println!(
        "{:<44} {:<6} {:<9} {:<20} {:<20} {:<20} PRIVATE KEY",
        "KID", "ALG", "STATE", "CREATED", "ACTIVATES", "RETIRES"
    );
    for k in list.as_array().into_iter().flatten() {
        println!(
            "{:<44} {:<6} {:<9} {:<20} {:<20} {:<20} {}",
            s(k, "kid"),
            s(k, "alg"),
            s(k, "state"),
            s(k, "created_at"),
            s(k, "activates_at"),
            k["retires_at"].as_str().unwrap_or("-"),
            s(k, "private_key_state")
        );
    }
}

/// The `audit list` table.
pub(crate) fn print_audit(events: &Value) {
    println!(
        "{:<20} {:<26} {:<22} {:<26} DETAIL",
        "AT", "ACTOR", "ACTION", "CLIENT_ID"
    );
    for e in events.as_array().into_iter().flatten() {
        println!(
            "{:<20} {:<26} {:<22} {:<26} {}",
            s(e, "at"),
            s(e, "actor"),
            s(e, "action"),
            e["client_id"].as_str().unwrap_or("-"),
            e["detail"]
        );
    }
}

/// `trust show`.
pub(crate) fn print_trust(t: &Value) {
    println!("trust:         {} ({})", s(t, "name"), s(t, "id"));
    if let Some(iss) = t["issuer"].as_str() {
        println!("issuer:        {iss}");
    }
    if let Some(d) = t["spiffe_trust_domain"].as_str() {
        println!("trust_domain:  {d}");
    }
    println!("audience:      {}", s(t, "audience"));
    println!("subject:       {}", s(t, "subject"));
    if let Some(claims) = t["claims"].as_object() {
        for (k, v) in claims {
            println!("claim:         {k}={}", text(v));
        }
    }
    match t["jwks_uri"].as_str() {
        Some(u) => println!("keys:          {u}"),
        None => println!("keys:          {}", s(t, "keys_from")),
    }
    if let Some(age) = t["max_token_age"].as_u64() {
        println!("max_token_age: {age}s");
    }
    println!("client_id:     {}", s(t, "client_id"));
}

/// The `trust list` table.
pub(crate) fn print_trusts(list: &Value) {
    println!(
        "{:<20} {:<26} {:<40} SUBJECT",
        "NAME", "CLIENT_ID", "ISSUER"
    );
    for t in list.as_array().into_iter().flatten() {
        let iss = t["issuer"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| {
                t["spiffe_trust_domain"]
                    .as_str()
                    .map(|d| format!("spiffe://{d}"))
            })
            .unwrap_or_default();
        println!(
            "{:<20} {:<26} {:<40} {}",
            s(t, "name"),
            s(t, "client_id"),
            iss,
            s(t, "subject")
        );
    }
}

/// `apikey show`.
pub(crate) fn print_api_key(k: &Value) {
    println!("id:         {}", s(k, "id"));
    println!("name:       {}", s(k, "name"));
    println!("state:      {}", s(k, "state"));
    println!("scopes:     {}", words(k, "scopes"));
    let audiences = words(k, "audiences");
    if !audiences.is_empty() {
        println!("audiences:  {audiences}");
    }
    if let Some(claims) = k["claims"].as_object() {
        for (name, v) in claims {
            println!("claim:      {name}={v}");
        }
    }
    if let Some(e) = k["expires_at"].as_str() {
        println!("expires_at: {e}");
    }
    if let Some(key) = k["api_key"].as_str() {
        println!("api_key:    {key}");
        println!("\nStore the key now: it is shown only once and cannot be recovered.");
    }
}

/// The `apikey list` table.
pub(crate) fn print_api_keys(list: &Value) {
    println!("{:<22} {:<8} {:<24} SCOPES", "ID", "STATE", "NAME");
    for k in list.as_array().into_iter().flatten() {
        println!(
            "{:<22} {:<8} {:<24} {}",
            s(k, "id"),
            s(k, "state"),
            s(k, "name"),
            words(k, "scopes")
        );
    }
}
