//! The commands, one module per family (as Redis groups them).

pub(crate) mod cluster;
pub(crate) mod connection;
pub(crate) mod keys;
pub(crate) mod server;
pub(crate) mod strings;

use ringflow_resp::Command;

/// Arguments 1.. of a command, by value.
pub(crate) fn operands(cmd: Command) -> impl Iterator<Item = Vec<u8>> {
    cmd.args.into_iter().skip(1)
}
