//! Built-in sources, all producing [`ringflow_stream::Value`] records:
//!
//! - `source.files`: lines of a file or of a directory's files, optionally tailing the
//!   directory ([`files::FilesSource`]);
//! - `source.tcp`: lines sent by a TCP server ([`tcp::TcpSource`]);
//! - `source.generate`: deterministic synthetic records at a controlled rate, with
//!   event times and watermarks ([`generate::GenerateSource`]).
//!
//! Sources are sans-IO in their timing: they read the processing time the runtime
//! passes to `poll` instead of the clock, emit at most the credit they are given, and
//! never block for long (files are read a bounded number of lines per poll, sockets
//! are non-blocking). When a spec is only validated they check their config and open
//! nothing.

pub mod files;
pub mod generate;
pub mod tcp;

pub use files::{FilesConfig, FilesSource};
pub use generate::{GenerateConfig, GenerateKind, GenerateSource};
pub use tcp::{TcpSource, TcpSourceConfig};

use ringflow_stream::Registry;

/// Registers the built-in sources: `source.files`, `source.tcp`, `source.generate`.
pub fn register(r: &mut Registry) {
    r.source::<FilesSource>("source.files");
    r.source::<TcpSource>("source.tcp");
    r.source::<GenerateSource>("source.generate");
}
