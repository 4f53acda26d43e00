//! `truc pki`: the axis CA and identity directories.

use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgGroup, Subcommand};
use truc_core::{AgencyCode, Principal};
use truc_pki::{IssueOptions, KeyType, Pki, Serial};

#[derive(Debug, Subcommand)]
pub(crate) enum PkiCommand {
    /// Make the axis CA (PKI/ca.pem) and the hub's identity (PKI/hub/) with
    /// its TLS certificate and receipt-signing key (PKI/hub/receipts.pub is
    /// for auditors).
    Init {
        /// PKI directory to create.
        #[arg(long, value_name = "PKI")]
        dir: PathBuf,
        /// The hub's name, in its certificate as urn:truc:hub:<name>.
        #[arg(long, default_value = "axis")]
        hub_name: String,
        /// Extra DNS name or IP address clients use to reach the hub
        /// (localhost, 127.0.0.1 and ::1 are always included). Repeatable.
        #[arg(long, value_name = "NAME")]
        san: Vec<String>,
    },
    /// Issue an identity directory (cert.pem, key.pem, ca.pem) to an
    /// agency, operator or auditor. A principal that has one already is
    /// refused unless --force is given.
    #[command(group(ArgGroup::new("who").required(true).args(["agency", "operator", "auditor"])))]
    Issue {
        /// PKI directory made by `truc pki init`.
        #[arg(long, value_name = "PKI")]
        dir: PathBuf,
        /// Agency code, e.g. 000.00.00.G22 or G09.01; writes PKI/agencies/CODE/.
        #[arg(long, value_name = "CODE")]
        agency: Option<String>,
        /// Operator name (lower-case); writes PKI/operators/NAME/.
        #[arg(long, value_name = "NAME")]
        operator: Option<String>,
        /// Auditor name (lower-case); writes PKI/auditors/NAME/.
        #[arg(long, value_name = "NAME")]
        auditor: Option<String>,
        /// Display name in the certificate, e.g. "Văn phòng Chính phủ".
        #[arg(long)]
        name: Option<String>,
        /// ecdsa-p256 (default), ed25519 or rsa-2048.
        #[arg(long, default_value = "ecdsa-p256")]
        key_type: String,
        /// Validity in days.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// Replace an existing identity (a new key and certificate). The old
        /// certificate is kept as cert.pem.old-<SERIAL> and is not revoked,
        /// so the system holding it keeps working until the new identity is
        /// installed there; then revoke it with `truc pki revoke --serial`.
        #[arg(long)]
        force: bool,
    },
    /// Revoke certificates and rewrite PKI/crl.pem.
    #[command(group(ArgGroup::new("what").required(true).args(["agency", "serial"])))]
    Revoke {
        /// PKI directory made by `truc pki init`.
        #[arg(long, value_name = "PKI")]
        dir: PathBuf,
        /// Revoke every certificate of this agency.
        #[arg(long, value_name = "CODE")]
        agency: Option<String>,
        /// Revoke one certificate by serial number (hex, as in PKI/issued.tsv).
        #[arg(long, value_name = "N")]
        serial: Option<String>,
    },
}

pub(crate) fn run(cmd: PkiCommand) -> anyhow::Result<()> {
    match cmd {
        PkiCommand::Init { dir, hub_name, san } => {
            let pki = Pki::init(&dir, &hub_name, &san)?;
            println!("axis CA        {}", pki.ca_pem_path().display());
            println!("hub identity   {}/", pki.hub_dir().display());
            println!(
                "receipt key    {} (give this to auditors)",
                pki.receipt_pub_path().display()
            );
            println!("CRL            {}", pki.crl_path().display());
        }
        PkiCommand::Issue {
            dir,
            agency,
            operator,
            auditor,
            name,
            key_type,
            days,
            force,
        } => {
            let pki = Pki::open(&dir)?;
            let principal = match (agency, operator, auditor) {
                (Some(code), _, _) => Principal::Agency(AgencyCode::parse(&code)?),
                (_, Some(n), _) => Principal::parse_uri(&format!("urn:truc:operator:{n}"))?,
                (_, _, Some(n)) => Principal::parse_uri(&format!("urn:truc:auditor:{n}"))?,
                _ => anyhow::bail!("name an --agency, --operator or --auditor"),
            };
            let key_type: KeyType = key_type.parse()?;
            let display = name.unwrap_or_else(|| principal.to_string());
            let opts = IssueOptions {
                key_type,
                days,
                ..IssueOptions::default()
            };
            if !force {
                let out = pki.issue(&principal, &display, &opts)?;
                println!("{principal} ({}) → {}/", key_type.as_str(), out.display());
                return Ok(());
            }
            let done = pki.reissue(&principal, &display, &opts).context("issuing")?;
            println!("{principal} ({}) → {}/", key_type.as_str(), done.dir.display());
            if let Some((serial, kept)) = done.replaced {
                println!("old certificate kept as {} (not revoked)", kept.display());
                match serial {
                    Some(s) => println!(
                        "once the new identity is installed, revoke the old one:\n  truc pki revoke --dir {} --serial {s}",
                        dir.display()
                    ),
                    None => println!("its serial could not be read: find it in {}", dir.join("issued.tsv").display()),
                }
            }
        }
        PkiCommand::Revoke { dir, agency, serial } => {
            let pki = Pki::open(&dir)?;
            let revoked = match (agency, serial) {
                (Some(code), _) => pki.revoke_principal(&Principal::Agency(AgencyCode::parse(&code)?))?,
                (_, Some(s)) => pki.revoke_serial(s.parse::<Serial>()?)?,
                _ => anyhow::bail!("name an --agency or a --serial"),
            };
            for s in &revoked {
                println!("revoked serial {s}");
            }
            println!("CRL written to {}", pki.crl_path().display());
        }
    }
    Ok(())
}
