//! Command-line syntax.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ringflow: actor-based cluster runtime for distributed stream processing.
#[derive(Debug, Parser)]
#[command(name = "ringflow", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a local cluster (a coordinator and workers as processes on loopback) until Ctrl-C.
    Local(LocalArgs),
    /// Run the coordinator.
    Coordinator(CoordinatorArgs),
    /// Run a worker.
    Worker(WorkerArgs),
    /// Manage the cluster CA and node / client certificates.
    #[command(subcommand)]
    Certs(CertsCommand),
    /// Show members, the ring's epoch and partitions without an owner.
    Status(StatusArgs),
    /// Store a value in the DHT.
    Put(PutArgs),
    /// Read a value from the DHT (exit status 1 if the key does not exist).
    Get(KeyArgs),
    /// Delete a key from the DHT (prints how many keys were deleted).
    Del(KeyArgs),
    /// Submit, list, inspect and cancel stream jobs.
    #[command(subcommand)]
    Job(JobCommand),
    /// Generate input for `sort`: Sort Benchmark (gensort) records or lines of words.
    Gen(GenArgs),
    /// Sort files with the cluster (sample, range-partition, external merge sort), or
    /// check a sorted output with `--verify`.
    Sort(SortArgs),
    /// Check configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Report every mistake in coordinator or worker config files, each with its line
    /// (`FILE:LINE:COL: message`); exit 1 if there is any.
    Check(ConfigCheckArgs),
}

/// Which node a config file is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ConfigRole {
    /// `ringflow coordinator --config FILE`.
    Coordinator,
    /// `ringflow worker --config FILE`.
    Worker,
}

#[derive(Debug, Args)]
pub struct ConfigCheckArgs {
    /// The files to check.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// The node the files are for [default: told from the keys or the file name].
    #[arg(long, value_enum)]
    pub role: Option<ConfigRole>,
    /// Do not check that the certificate files the config names exist here.
    #[arg(long)]
    pub skip_files: bool,
}

#[derive(Debug, Subcommand)]
pub enum JobCommand {
    /// Submit a job spec (TOML or JSON); prints the job id. Exit 2 if refused.
    Submit(JobSubmitArgs),
    /// List jobs.
    List(JobListArgs),
    /// Show one job: state, reason, per-vertex counters and queue fill.
    Status(JobIdArgs),
    /// Cancel a job.
    Cancel(JobIdArgs),
}

#[derive(Debug, Args)]
pub struct JobSubmitArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The spec file (`.json` is read as JSON, anything else as TOML).
    pub spec: PathBuf,
    /// Wait until the job ends; exit 0 if it finished, 1 if it failed or was cancelled.
    #[arg(long)]
    pub wait: bool,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JobListArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct JobIdArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The job id (from `job submit` or `job list`).
    pub id: String,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// Wait until the job ends (status only).
    #[arg(long)]
    pub wait: bool,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The key.
    pub key: String,
    /// The value.
    pub value: String,
}

#[derive(Debug, Args)]
pub struct KeyArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// The key.
    pub key: String,
}

impl Command {
    /// Whether this is a short-lived client command (as opposed to a node).
    pub fn is_client(&self) -> bool {
        matches!(
            self,
            Command::Certs(_)
                | Command::Status(_)
                | Command::Put(_)
                | Command::Get(_)
                | Command::Del(_)
                | Command::Job(_)
                | Command::Gen(_)
                | Command::Sort(_)
                | Command::Config(_)
        )
    }
}

#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Number of workers.
    #[arg(long, default_value_t = 3)]
    pub workers: usize,
    /// Directory for certificates, data and logs [default: ~/.local/share/ringflow/local].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Coordinator port on 127.0.0.1 (0 picks a free one).
    #[arg(long, default_value_t = 7400)]
    pub port: u16,
    /// Partition count of a new cluster (power of two).
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Replication factor.
    #[arg(long)]
    pub replication: Option<u32>,
    /// Failure timeout in milliseconds.
    #[arg(long)]
    pub failure_timeout_ms: Option<u64>,
    /// Delete the data left by an earlier run first.
    #[arg(long)]
    pub fresh: bool,
    /// Do not write the client profile.
    #[arg(long)]
    pub no_profile: bool,
    /// Do not open the workers' Redis-protocol ports.
    #[arg(long)]
    pub no_resp: bool,
    /// Serve Prometheus metrics from every node on a free loopback port (printed).
    #[arg(long)]
    pub metrics: bool,
    /// The workers' `--fsync-interval-ms` (DHT durability; default 0: every write).
    #[arg(long)]
    pub fsync_interval_ms: Option<u64>,
}

#[derive(Debug, Args)]
pub struct CoordinatorArgs {
    /// TOML configuration file (flags override it).
    #[arg(long, env = "RINGFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// QUIC listen address.
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Data directory (membership and assignment).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Directory with ca.crt and this node's certificate.
    #[arg(long)]
    pub certs: Option<PathBuf>,
    /// Base name of this node's certificate files.
    #[arg(long)]
    pub name: Option<String>,
    /// Cluster name.
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// Partition count (power of two), fixed at cluster creation.
    #[arg(long)]
    pub partitions: Option<u32>,
    /// Replication factor.
    #[arg(long)]
    pub replication: Option<u32>,
    /// Heartbeat interval in milliseconds.
    #[arg(long)]
    pub heartbeat_interval_ms: Option<u64>,
    /// Failure timeout in milliseconds.
    #[arg(long)]
    pub failure_timeout_ms: Option<u64>,
    /// After a restart, how long known workers keep their partitions while they reconnect (ms).
    #[arg(long)]
    pub recovery_grace_ms: Option<u64>,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// Serve Prometheus metrics over HTTP on this address (`GET /metrics`).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// TOML configuration file (flags override it).
    #[arg(long, env = "RINGFLOW_CONFIG")]
    pub config: Option<PathBuf>,
    /// Coordinator address, HOST:PORT.
    #[arg(long)]
    pub coordinator: Option<String>,
    /// Stable worker id.
    #[arg(long)]
    pub id: Option<String>,
    /// QUIC listen address (port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Address announced to peers, if not the bound one.
    #[arg(long)]
    pub advertise: Option<String>,
    /// Capacity weight.
    #[arg(long)]
    pub capacity: Option<u32>,
    /// Data directory.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Directory with ca.crt and this node's certificate.
    #[arg(long)]
    pub certs: Option<PathBuf>,
    /// Base name of this node's certificate files [default: the worker id].
    #[arg(long)]
    pub name: Option<String>,
    /// Cluster name.
    #[arg(long)]
    pub cluster_name: Option<String>,
    /// Write the bound address to this file once listening.
    #[arg(long)]
    pub addr_file: Option<PathBuf>,
    /// Serve the DHT over RESP (Redis protocol) on this address (port 0 picks one).
    #[arg(long)]
    pub resp_listen: Option<SocketAddr>,
    /// DHT durability: 0 fsyncs every write before acknowledging it; N > 0 acknowledges
    /// writes the OS has and fsyncs every N ms (config key `dht.fsync_interval_ms`).
    #[arg(long)]
    pub fsync_interval_ms: Option<u64>,
    /// Serve Prometheus metrics over HTTP on this address (`GET /metrics`).
    #[arg(long)]
    pub metrics_listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum CertsCommand {
    /// Create a cluster CA (ca.crt, ca.key) in DIR.
    Init {
        /// Directory for the CA and the certificates it issues.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Cluster name, written into the CA's subject.
        #[arg(long, default_value = "ringflow")]
        cluster_name: String,
        /// Replace an existing CA.
        #[arg(long)]
        force: bool,
    },
    /// Issue a node (default) or client certificate signed by the CA in DIR.
    Issue {
        /// Directory holding the CA.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Name of the node or client (file base name and a SAN).
        #[arg(long)]
        name: String,
        /// Issue a client certificate (CLI, applications) instead of a node one.
        #[arg(long)]
        client: bool,
        /// Extra DNS names or IP addresses for a node certificate.
        #[arg(long = "san")]
        sans: Vec<String>,
    },
    /// Create the CA if DIR has none, then every listed certificate DIR lacks; keeps
    /// what exists (safe to run at every start, e.g. as a container's first step).
    Bootstrap {
        /// Directory for the CA and the certificates.
        #[arg(long, default_value = "certs")]
        dir: PathBuf,
        /// Cluster name, written into a new CA's subject.
        #[arg(long, default_value = "ringflow")]
        cluster_name: String,
        /// Node certificates to issue (coordinator and worker ids), comma-separated.
        #[arg(long, value_delimiter = ',')]
        nodes: Vec<String>,
        /// Client certificates to issue, comma-separated.
        #[arg(long, value_delimiter = ',')]
        clients: Vec<String>,
    },
}

/// How a client reaches the cluster: flags, then environment, then the profile.
#[derive(Debug, Args, Clone)]
pub struct ClientArgs {
    /// Coordinator address, HOST:PORT.
    #[arg(long, env = "RINGFLOW_CLUSTER")]
    pub cluster: Option<String>,
    /// Directory with ca.crt and the client certificate.
    #[arg(long, env = "RINGFLOW_CERTS")]
    pub certs: Option<PathBuf>,
    /// Base name of the client certificate files.
    #[arg(long, env = "RINGFLOW_CERT_NAME")]
    pub cert_name: Option<String>,
    /// Cluster name.
    #[arg(long, env = "RINGFLOW_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// Profile file [default: $XDG_CONFIG_HOME/ringflow/profile.toml].
    #[arg(long, env = "RINGFLOW_PROFILE")]
    pub profile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Ask this node (HOST:PORT) about itself instead of asking the coordinator.
    #[arg(long)]
    pub node: Option<String>,
}

#[derive(Debug, Args)]
pub struct GenArgs {
    /// Record format: `gensort` (100-byte Sort Benchmark records) or `lines` (text).
    #[arg(long, default_value = "gensort")]
    pub format: String,
    /// Number of records.
    #[arg(long)]
    pub records: u64,
    /// The file to write.
    #[arg(long)]
    pub output: PathBuf,
    /// Seed of the pseudo-random keys (the same seed gives the same file).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Skewed keys: a quarter of the records share one 2-byte key prefix, and some share
    /// exact keys.
    #[arg(long)]
    pub skew: bool,
    /// Print the figures as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("mode").required(true).args(["output", "verify"])))]
pub struct SortArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    /// Input files or directories (read by the workers; with `--verify`, the inputs to
    /// recompute the expected count and checksum from).
    #[arg(long, num_args = 1.., value_name = "PATH")]
    pub input: Vec<PathBuf>,
    /// Output directory: one part file per worker, in order, and `manifest.json`.
    #[arg(long, value_name = "DIR", requires = "input")]
    pub output: Option<PathBuf>,
    /// Record format: `gensort` (100-byte records, 10-byte key) or `lines` [default: gensort,
    /// or the manifest's with --verify].
    #[arg(long)]
    pub format: Option<String>,
    /// Lines: sort by this field (0 = the first) instead of the whole line.
    #[arg(long, value_name = "N")]
    pub key_field: Option<usize>,
    /// Lines: the field delimiter (`\t` for a tab).
    #[arg(long, value_name = "STR")]
    pub delimiter: Option<String>,
    /// Memory for sorting on each worker before it spills runs to disk (512MiB, 2GiB, bytes).
    #[arg(long, default_value = "2GiB")]
    pub memory: String,
    /// Every worker reads the same input path on its own disk (no splitting).
    #[arg(long)]
    pub local: bool,
    /// Read the inputs on this machine and stream them to the workers (for inputs the
    /// workers cannot see); splitters are sampled here.
    #[arg(long, conflicts_with = "local")]
    pub from_client: bool,
    /// Also concatenate the parts, in order, into this file.
    #[arg(long, value_name = "OUT")]
    pub single_file: Option<PathBuf>,
    /// Replace an earlier sort output in the output directory.
    #[arg(long)]
    pub overwrite: bool,
    /// Samples per worker for choosing the range boundaries.
    #[arg(long, default_value_t = 10_000)]
    pub samples: usize,
    /// How the sample job hands its samples to this client: `dht` (default), or `files`
    /// under the output directory (the fallback when the DHT sink fails).
    #[arg(long, hide = true, default_value = "dht", value_parser = ["dht", "files"])]
    pub sample_via: String,
    /// Do not show progress bars.
    #[arg(long)]
    pub no_progress: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Check a sorted output (a directory with a manifest, or one file) instead of sorting:
    /// global order, count and checksum. No cluster needed.
    #[arg(long, value_name = "DIR|FILE", conflicts_with_all = ["output", "local", "single_file"])]
    pub verify: Option<PathBuf>,
}
