//! Build your own `ringflow` executable with custom operators: the same command line
//! (`worker`, `local`, `job`, ...), with your operators registered by name beside the
//! built-ins.

use std::process::ExitCode;

use clap::Parser;
use ringflow_stream::{Operator, Registry, Source, TwoInput};

/// The `ringflow` command line with a registry of operators.
///
/// ```no_run
/// use ringflow::stream::{Batch, Context, InitContext, OpResult, Operator, Value};
///
/// struct Shout;
/// impl Operator for Shout {
///     type In = Value;
///     type Out = Value;
///     type Config = serde_json::Value;
///     fn create(_: Self::Config, _: &InitContext) -> OpResult<Self> { Ok(Shout) }
///     fn on_batch(&mut self, batch: Batch<Value>, ctx: &mut Context<'_, Value>) -> OpResult {
///         for item in batch {
///             let s = item.value.as_str().unwrap_or_default().to_uppercase();
///             ctx.emit_item(item.key, Value::String(s));
///         }
///         Ok(())
///     }
/// }
///
/// fn main() -> std::process::ExitCode {
///     ringflow::WorkerBuilder::new().operator::<Shout>("shout").run()
/// }
/// ```
pub struct WorkerBuilder {
    registry: Registry,
}

impl Default for WorkerBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl WorkerBuilder {
    /// The built-in operators and sources.
    pub fn new() -> Self {
        WorkerBuilder {
            registry: ringflow_ops::with_builtins(),
        }
    }

    /// Registers a custom operator under `name` (usable as `operator = "name"` in specs).
    pub fn operator<O: Operator>(mut self, name: &str) -> Self {
        self.registry.operator::<O>(name);
        self
    }

    /// Registers a custom two-input operator (a join, say) under `name`: its vertex
    /// takes exactly two inputs, left first.
    pub fn two_input<J: TwoInput>(mut self, name: &str) -> Self {
        self.registry.two_input::<J>(name);
        self
    }

    /// Registers a custom source under `name`.
    pub fn source<S: Source>(mut self, name: &str) -> Self {
        self.registry.source::<S>(name);
        self
    }

    /// The registry built so far.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Parses the process arguments and runs the command, like the `ringflow` binary.
    pub fn run(self) -> ExitCode {
        let cli = crate::cli::Cli::parse();
        if cli.command.is_client() {
            // A client printing into a closed pipe (`ringflow status | head`) ends
            // quietly, as Unix tools do. Long-running nodes keep ignoring SIGPIPE.
            // SAFETY: restoring the default disposition of one signal before any thread
            // starts.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
            }
        }
        init_logging();
        match crate::cli::run(cli, self.registry) {
            Ok(code) => code,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        }
    }
}

fn init_logging() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only on a terminal: journald, docker logs and log files get plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
