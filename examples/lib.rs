//! Runnable examples for ringflow; see the `[[example]]` entries in Cargo.toml.
