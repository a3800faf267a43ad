//! `ringflow certs init | issue | bootstrap`.

use std::process::ExitCode;

use crate::{certs, Role};
use clap::Subcommand;
use std::path::PathBuf;

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

pub fn run(cmd: CertsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CertsCommand::Init {
            dir,
            cluster_name,
            force,
        } => {
            let files = certs::init_ca(&dir, &cluster_name, force)?;
            println!(
                "cluster CA created: {} (key {})",
                files.cert.display(),
                files.key.display()
            );
            println!("keep the key secret; issue certificates with `ringflow certs issue --dir {} --name NAME`", dir.display());
        }
        CertsCommand::Issue {
            dir,
            name,
            client,
            sans,
        } => {
            let role = if client { Role::Client } else { Role::Node };
            let files = certs::issue(&dir, &name, role, &sans)?;
            println!(
                "{} certificate for {name}: {} (key {})",
                if client { "client" } else { "node" },
                files.cert.display(),
                files.key.display()
            );
        }
        CertsCommand::Bootstrap {
            dir,
            cluster_name,
            nodes,
            clients,
        } => {
            if dir.join("ca.crt").exists() {
                println!("cluster CA kept: {}", dir.join("ca.crt").display());
            } else {
                std::fs::create_dir_all(&dir)?;
                let files = certs::init_ca(&dir, &cluster_name, false)?;
                println!("cluster CA created: {}", files.cert.display());
            }
            let wanted = nodes
                .iter()
                .map(|n| (n, Role::Node))
                .chain(clients.iter().map(|n| (n, Role::Client)));
            for (name, role) in wanted {
                if dir.join(format!("{name}.crt")).exists() {
                    println!("kept: {name}");
                    continue;
                }
                let files = certs::issue(&dir, name, role, &[])?;
                println!("issued: {name} ({})", files.cert.display());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
