//! `ringflow certs init | issue | bootstrap`.

use std::process::ExitCode;

use crate::{certs, Role};

use crate::cli::CertsCommand;

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
