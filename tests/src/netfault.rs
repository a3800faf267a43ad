//! Network faults between processes on loopback: UDP between two ports dropped by
//! iptables rules that the test installs and removes (on drop), so a QUIC peer is cut off
//! from exactly one other while every other path keeps working.
//!
//! Needs root and a working `iptables`; [`available`] says why not otherwise, and tests
//! print `SKIPPED …` then. `.ci/run` installs iptables where it is missing. Rules match
//! ports only on the loopback interface, so tests running in parallel (each on its own
//! ephemeral ports) do not disturb each other.

use std::process::Command;

fn iptables(args: &[String]) -> Result<(), String> {
    let out = Command::new("iptables")
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| format!("running iptables: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "iptables {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether loopback faults can be made here; the reason when not.
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("network faults need root (iptables)".into());
    }
    iptables(&["-L".into(), "OUTPUT".into(), "-n".into()])
        .map_err(|e| format!("iptables does not work here: {e}"))
}

/// A cut between two UDP ports on loopback, both ways; healed when dropped.
pub struct UdpCut {
    rules: Vec<Vec<String>>,
}

impl UdpCut {
    /// Drops every UDP datagram from port `a` to port `b` and back.
    pub fn between(a: u16, b: u16) -> Result<Self, String> {
        let rule = |from: u16, to: u16| -> Vec<String> {
            [
                "OUTPUT",
                "-o",
                "lo",
                "-p",
                "udp",
                "--sport",
                &from.to_string(),
                "--dport",
                &to.to_string(),
                "-j",
                "DROP",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect()
        };
        let mut cut = UdpCut { rules: Vec::new() };
        for r in [rule(a, b), rule(b, a)] {
            let mut insert = vec!["-I".to_string()];
            insert.extend(r.iter().cloned());
            iptables(&insert)?;
            cut.rules.push(r);
        }
        Ok(cut)
    }

    /// Heals the cut now.
    pub fn heal(self) {}
}

impl Drop for UdpCut {
    fn drop(&mut self) {
        for r in self.rules.drain(..) {
            let mut delete = vec!["-D".to_string()];
            delete.extend(r);
            if let Err(e) = iptables(&delete) {
                eprintln!("could not remove a test's iptables rule: {e}");
            }
        }
    }
}
