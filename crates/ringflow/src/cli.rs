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
