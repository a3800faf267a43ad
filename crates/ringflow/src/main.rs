//! The `ringflow` command: coordinator, worker, local cluster, certificates, status,
//! DHT and job commands, with the built-in operators.

/// The allocator every ringflow binary should use (see [`ringflow::MiMalloc`]).
#[global_allocator]
static GLOBAL: ringflow::MiMalloc = ringflow::MiMalloc;

fn main() -> std::process::ExitCode {
    ringflow::WorkerBuilder::new().run()
}
