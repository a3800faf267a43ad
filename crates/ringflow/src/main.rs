//! The `ringflow` command: coordinator, worker, local cluster, certificates, status,
//! DHT and job commands, with the built-in operators.

fn main() -> std::process::ExitCode {
    ringflow::WorkerBuilder::new().run()
}
