//! Three federated hubs as the real axis is deployed (issue 20): a province
//! hub `h49`, the `national` hub and a ministry hub `g12`, each a real
//! `trucd` with a CA of its own (`truc pki init --hub <id>`), its own data
//! directory and a configuration file written here, for the tools that
//! measure federation (`truc-chaos --topology federation`, `truc-bench
//! --topology federation`).
//!
//! The ports are chosen before any hub starts, so that every configuration
//! names its peers' addresses, and each hub listens on its own port again
//! after a restart. h49 and g12 send every code not theirs to the national
//! hub (`federation.default_peer`); the national hub routes `*.H49`/`H49.*`
//! to h49 and `*.G12`/`G12.*` to g12 and serves `*.G01`/`G01.*` itself; h49
//! and g12 each list the other as an `[[origins]]` entry (its CA and
//! codes), since they never talk to each other directly.
//!
//! ```text
//! root/h49/pki/         the CA, PKI/hub (urn:truc:hub:h49), operators/<operator>
//! root/h49/trucd.toml   [federation], [[peers]], [[origins]]
//! root/h49/data/        the store
//! root/h49/trucd.log    its output
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use truc_core::Principal;
use truc_pki::{IssueOptions, Pki};

use crate::Trucd;

/// Index of the province hub in [`Federation::hubs`].
pub const H49: usize = 0;
/// Index of the national hub (the middle one).
pub const NATIONAL: usize = 1;
/// Index of the ministry hub.
pub const G12: usize = 2;

/// Each hub's id (`urn:truc:hub:<id>`) and the level-1 code of the
/// agencies it serves (`*.<L1>` and `<L1>.*`), by index.
pub const HUBS: [(&str, &str); 3] = [("h49", "H49"), ("national", "G01"), ("g12", "G12")];

/// `n` agency codes served by hub `hub` for a role letter: `H49.S001`, … (QĐ
/// 20 form, the hub's level-1 code).
pub fn agency_codes(hub: usize, role: char, n: usize) -> Vec<String> {
    let l1 = HUBS[hub].1;
    (1..=n).map(|i| format!("{l1}.{role}{i:03}")).collect()
}

/// The three hubs, not started yet by [`Federation::prepare`].
pub struct Federation {
    /// The hubs, by index ([`H49`], [`NATIONAL`], [`G12`]).
    pub hubs: Vec<Trucd>,
    /// Each hub's PKI directory (its CA key is there: issue its agencies).
    pub pki: Vec<PathBuf>,
    /// Each hub's log file.
    pub logs: Vec<PathBuf>,
}

impl Federation {
    /// Make the three PKIs (each with the operator `operator`, whom the
    /// readiness check uses), choose the ports, write the configuration
    /// files, and set up each `trucd` from `bin` with `env` (plus
    /// `TRUC_CONFIG`). Nothing is started.
    pub fn prepare(bin: &Path, root: &Path, operator: &str, env: &[(String, String)]) -> anyhow::Result<Federation> {
        let mut pki = Vec::new();
        for (id, _) in HUBS {
            let dir = root.join(id).join("pki");
            let p = Pki::init(&dir, id, &[]).with_context(|| format!("truc pki init --hub {id}"))?;
            let op = Principal::parse_uri(&format!("urn:truc:operator:{operator}"))?;
            p.issue(&op, &op.to_string(), &IssueOptions::default())?;
            pki.push(dir);
        }
        let ports = distinct_ports(HUBS.len())?;
        let mut hubs = Vec::new();
        let mut logs = Vec::new();
        for (i, (id, _)) in HUBS.iter().enumerate() {
            let dir = root.join(id);
            let config = dir.join("trucd.toml");
            std::fs::write(&config, config_text(i, &pki, &ports))
                .with_context(|| format!("writing {}", config.display()))?;
            let mut env = env.to_vec();
            env.push(("TRUC_CONFIG".into(), config.display().to_string()));
            let log = dir.join("trucd.log");
            hubs.push(
                Trucd::new(bin, &pki[i], &dir.join("data"), &log, operator)
                    .env(env)
                    .port(ports[i]),
            );
            logs.push(log);
        }
        Ok(Federation { hubs, pki, logs })
    }

    /// Start every hub (the national one first); how long each took.
    pub async fn start(&mut self) -> anyhow::Result<Vec<Duration>> {
        let mut took = vec![Duration::ZERO; self.hubs.len()];
        for i in [NATIONAL, H49, G12] {
            took[i] = self.hubs[i]
                .start()
                .await
                .with_context(|| format!("starting hub {}", HUBS[i].0))?;
        }
        Ok(took)
    }

    /// Each hub's address, by index.
    pub fn addrs(&self) -> Vec<String> {
        self.hubs.iter().map(Trucd::addr).collect()
    }
}

/// `n` free ports, all different.
fn distinct_ports(n: usize) -> anyhow::Result<Vec<u16>> {
    let mut ports: Vec<u16> = Vec::with_capacity(n);
    while ports.len() < n {
        let p = crate::free_port()?;
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    Ok(ports)
}

fn patterns(hub: usize) -> String {
    let l1 = HUBS[hub].1;
    format!("[\"*.{l1}\", \"{l1}.*\"]")
}

fn path(p: &Path) -> String {
    format!("{:?}", p.display().to_string())
}

/// The configuration file of hub `i`.
fn config_text(i: usize, pki: &[PathBuf], ports: &[u16]) -> String {
    let mut t = format!("[federation]\nserves = {}\n", patterns(i));
    let peer = |j: usize, serves: String| {
        format!(
            "\n[[peers]]\nid = \"{}\"\naddress = \"127.0.0.1:{}\"\nca = {}\ncrl = {}\nserves = {serves}\n",
            HUBS[j].0,
            ports[j],
            path(&pki[j].join("ca.pem")),
            path(&pki[j].join("crl.pem")),
        )
    };
    if i == NATIONAL {
        t += &peer(H49, patterns(H49));
        t += &peer(G12, patterns(G12));
    } else {
        let other = if i == H49 { G12 } else { H49 };
        t += &format!("default_peer = \"{}\"\n", HUBS[NATIONAL].0);
        t += &peer(NATIONAL, "[]".into());
        t += &format!(
            "\n[[origins]]\nid = \"{}\"\nca = {}\ncrl = {}\nserves = {}\n",
            HUBS[other].0,
            path(&pki[other].join("ca.pem")),
            path(&pki[other].join("crl.pem")),
            patterns(other)
        );
    }
    t
}
