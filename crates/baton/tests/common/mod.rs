//! Helpers shared by the integration tests of `baton` (each test binary
//! uses a part of them).

#![allow(dead_code)]

pub mod server;
