//! The commands of waiting: deliver a signal, list an execution's signals.
//! `--json` prints the HTTP API's answer types.

use baton_api::{SignalAnswer, SignalBody, SignalsAnswer, bytes_json, check_json};
use baton_core::{AdminBackend, ExecutionId, IdempotencyKey, NewSignal, SignalName, SignalOutcome};
use serde_json::value::RawValue;

use crate::table::Table;
use crate::{CliResult, print_json};

/// `baton signal ID NAME [--data JSON] [--key K]`.
pub(crate) async fn signal(
    backend: &dyn AdminBackend,
    id: &str,
    name: &str,
    data: &str,
    key: Option<String>,
    json: bool,
) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let name = SignalName::new(name)?;
    // Kept as the text given, so numbers of any size stay exactly as typed.
    let payload: Box<RawValue> = serde_json::from_str(data).map_err(|e| {
        baton_core::EngineError::invalid(
            "data",
            data,
            format!("not valid JSON ({e}); quote strings, for example --data '\"yes\"'"),
        )
    })?;
    check_json("data", payload.get())?;
    let mut signal = NewSignal::new(name.clone(), payload.get().as_bytes().to_vec());
    if let Some(k) = key {
        signal = signal.with_idempotency_key(IdempotencyKey::new(k)?);
    }
    let outcome = backend.signal(&id, signal).await?;
    if json {
        print_json(&SignalAnswer { outcome });
        return Ok(());
    }
    let what = match outcome {
        SignalOutcome::Resumed => "it completed the wait: the execution runs again",
        SignalOutcome::Buffered => "kept for a wait (the execution does not wait for it yet)",
        SignalOutcome::Duplicate => "a signal with this key was delivered before; nothing changed",
        SignalOutcome::Ignored => "the execution has finished; nothing was stored",
    };
    println!("{name} to {id}: {outcome} ({what})");
    Ok(())
}

/// `baton signals ID`.
pub(crate) async fn signals(backend: &dyn AdminBackend, id: &str, json: bool) -> CliResult<()> {
    let id: ExecutionId = id.parse()?;
    let items = backend.signals(&id).await?;
    if json {
        print_json(&SignalsAnswer {
            items: items.iter().map(SignalBody::from).collect(),
        });
        return Ok(());
    }
    let mut t = Table::new(["SEQ", "NAME", "RECEIVED", "WAIT", "KEY", "PAYLOAD"]);
    for s in &items {
        let payload = bytes_json(&s.payload).to_string();
        let payload = if payload.chars().count() > 60 {
            format!("{}…", payload.chars().take(59).collect::<String>())
        } else {
            payload
        };
        t.row([
            s.seq.to_string(),
            s.name.to_string(),
            s.received_at.to_string(),
            s.wait
                .map(|w| w.to_string())
                .unwrap_or_else(|| "buffered".into()),
            s.idempotency_key
                .as_ref()
                .map(|k| k.to_string())
                .unwrap_or_else(|| "-".into()),
            payload,
        ]);
    }
    t.print_or("no signals");
    Ok(())
}
