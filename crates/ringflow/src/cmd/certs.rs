//! `ringflow certs init | issue`.

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
    }
    Ok(ExitCode::SUCCESS)
}
