//! # baton-sdk
//!
//! How applications use Baton: a [`Client`] to submit, inspect, cancel and
//! wait for executions and to read flows ([`Client::children`],
//! [`Client::tree`]), and a [`Worker`] runtime that claims executions and
//! runs handlers registered by kind; a handler starts children of its
//! execution with [`Context::submit_child`].
//!
//! Both reach Baton by URL, through one internal transport with two forms:
//! a backend opened in this process (`sqlite://…`, `sqlite::memory:`, and
//! `postgres://…` with the `postgres` feature), or a `baton serve` server
//! through the HTTP API (`http://HOST:PORT`). Behaviour is the same over
//! both; errors are [`baton_core::EngineError`]s, classified by what to do
//! next.
//!
//! ```no_run
//! # async fn demo() -> baton_core::Result<()> {
//! use std::time::Duration;
//! use baton_sdk::{Client, Context, HandlerError, Worker};
//!
//! let client = Client::connect("http://127.0.0.1:7420").await?;
//! let worker = Worker::builder(&client)
//!     .concurrency(8)
//!     .handler("double", |_ctx: Context, n: u64| async move { Ok::<_, HandlerError>(n * 2) })
//!     .start()?;
//! let out = client.submit("double", &21).await?;
//! let snap = client.wait_for_completion(&out.id, Duration::from_secs(10)).await?;
//! assert_eq!(baton_sdk::decode_result::<u64>(&snap)?, Some(42));
//! worker.shutdown(Duration::from_secs(5)).await;
//! # Ok(()) }
//! ```
//!
//! See `examples/quickstart.rs` for a complete program on the embedded
//! backend, with retries and a cancellation.

#![warn(missing_docs)]

mod client;
mod context;
mod http;
mod transport;
mod worker;

pub use client::{Client, decode_result, open_backend};
pub use context::{Context, HandlerError, StepRetry, StopReason, StopToken};
pub use worker::{Worker, WorkerBuilder, WorkerStats};
