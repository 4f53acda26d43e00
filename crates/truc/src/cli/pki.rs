//! `truc pki`: the axis CA and identity directories.

use std::path::PathBuf;

use anyhow::Context;
use clap::{ArgGroup, Subcommand};
use truc_core::{AgencyCode, Principal};
use truc_pki::{IssueOptions, KeyType, Pki, Serial};

use super::output::{Format, OutputArgs};

#[derive(Debug, Subcommand)]
pub(crate) enum PkiCommand {
    /// Make the axis CA (PKI/ca.pem) and the hub's identity (PKI/hub/) with
    /// its TLS certificate, receipt-signing key (PKI/hub/receipts.pub is
    /// for auditors and peers) and witness key (PKI/hub/witness.pub: peers
    /// check the cosignatures it gives their checkpoints).
    ///
    /// Examples:
    ///   truc pki init --dir pki
    ///   truc pki init --dir pki --hub h49 --san h49.truc.gov.vn,10.49.0.1
    #[command(verbatim_doc_comment)]
    Init {
        /// PKI directory to create.
        #[arg(long, value_name = "PKI")]
        dir: PathBuf,
        /// The hub's id, in its certificate as urn:truc:hub:<id> (lower-case
        /// letters, digits, '.', '_', '-'): its name among federated hubs and
        /// the origin of its checkpoints (<id>.truc/receipts). --hub-name is
        /// the old spelling, still accepted.
        #[arg(long = "hub", visible_alias = "hub-name", value_name = "ID", default_value = "axis")]
        hub_name: String,
        /// Extra DNS name or IP address clients use to reach the hub
        /// (localhost, 127.0.0.1 and ::1 are always included). Repeatable.
        #[arg(long, value_name = "NAME", value_delimiter = ',')]
        san: Vec<String>,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Issue an identity directory (cert.pem, key.pem, ca.pem) to an
    /// agency, operator, auditor or hub, or a TLS certificate to a server
    /// (--server: NATS, a reverse proxy). One that exists already is
    /// refused unless --force is given.
    ///
    /// Examples:
    ///   truc pki issue --dir pki --agency 000.00.00.G22 --name "Văn phòng Chính phủ"
    ///   truc pki issue --dir pki --operator ops
    ///   truc pki issue --dir pki --hub h49 --san h49.truc.gov.vn,10.49.0.1
    ///       (another hub of this CA: PKI/hubs/h49/, with its own receipt
    ///       key; run it with `trucd --identity pki/hubs/h49`)
    ///   truc pki renew --dir pki --hub h49 --san h49-b.truc.gov.vn
    ///       (a name more, same key)
    #[command(verbatim_doc_comment)]
    #[command(group(ArgGroup::new("who").required(true).args(["agency", "operator", "auditor", "hub", "server"])))]
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
        /// A hub's id: its certificate names urn:truc:hub:<id> (what peers
        /// configure as [[peers]] id) and localhost, 127.0.0.1, ::1, the
        /// names it had, and every --san (the names agencies and peers
        /// dial). PKI/hub/ for this PKI's own hub (with --force: a new TLS
        /// key; `truc pki renew --hub` keeps it), PKI/hubs/<id>/ for
        /// another hub of this CA. Either holds a receipt key
        /// (receipts.key, receipts.pub) and a witness key (witness.key,
        /// witness.pub), kept across renewals.
        #[arg(long, value_name = "ID")]
        hub: Option<String>,
        /// A server that is not a Truc principal (a NATS server for the
        /// JetStream store, a reverse proxy): a TLS certificate for the
        /// --san names only, in PKI/servers/NAME/.
        #[arg(long, value_name = "NAME", requires = "san")]
        server: Option<String>,
        /// DNS names or IP addresses clients dial (for --hub and --server),
        /// comma-separated or repeated.
        #[arg(long, value_name = "DNS-OR-IP", value_delimiter = ',')]
        san: Vec<String>,
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
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Renew a certificate: the same subject, names and key type, valid
    /// --days from now; the same key unless --new-key. The old certificate
    /// is kept as cert.pem.old-<SERIAL> and stays valid: install the new
    /// one, then revoke the old serial (printed).
    #[command(group(ArgGroup::new("who").required(true).args(["agency", "operator", "auditor", "hub"])))]
    Renew {
        /// PKI directory made by `truc pki init`.
        #[arg(long, value_name = "PKI")]
        dir: PathBuf,
        /// Agency code.
        #[arg(long, value_name = "CODE")]
        agency: Option<String>,
        /// Operator name.
        #[arg(long, value_name = "NAME")]
        operator: Option<String>,
        /// Auditor name.
        #[arg(long, value_name = "NAME")]
        auditor: Option<String>,
        /// Hub name (this PKI's own hub: PKI/hub/).
        #[arg(long, value_name = "NAME")]
        hub: Option<String>,
        /// Names to add (DNS or IP), comma-separated or repeated.
        #[arg(long, value_name = "DNS-OR-IP", value_delimiter = ',')]
        san: Vec<String>,
        /// Validity in days from now.
        #[arg(long, default_value_t = 365)]
        days: u32,
        /// A new key too (a key thought exposed); by default the key stays.
        #[arg(long)]
        new_key: bool,
        #[command(flatten)]
        out: OutputArgs,
    },
    /// Every certificate this CA issued: subject, role, serial, expiry,
    /// revoked or not (PKI/issued.tsv and revoked.tsv).
    List {
        /// PKI directory made by `truc pki init`.
        #[arg(long, value_name = "PKI")]
        dir: PathBuf,
        #[command(flatten)]
        out: OutputArgs,
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
        #[command(flatten)]
        out: OutputArgs,
    },
}

/// The principal named by one of --agency, --operator, --auditor, --hub.
fn principal(
    agency: Option<String>,
    operator: Option<String>,
    auditor: Option<String>,
    hub: Option<String>,
) -> anyhow::Result<Principal> {
    Ok(match (agency, operator, auditor, hub) {
        (Some(code), _, _, _) => Principal::Agency(AgencyCode::parse(&code)?),
        (_, Some(n), _, _) => Principal::parse_uri(&format!("urn:truc:operator:{n}"))?,
        (_, _, Some(n), _) => Principal::parse_uri(&format!("urn:truc:auditor:{n}"))?,
        (_, _, _, Some(n)) => Principal::parse_uri(&format!("urn:truc:hub:{n}"))?,
        _ => anyhow::bail!("name an --agency, --operator, --auditor or --hub"),
    })
}

/// A hub that has an identity already: say how to add names without a new
/// key, beside how to replace it.
fn hub_exists_hint(e: truc_pki::PkiError, principal: &Principal, dir: &std::path::Path) -> anyhow::Error {
    match (&e, principal) {
        (truc_pki::PkiError::IdentityExists { .. }, Principal::Hub(id)) => super::errors::Problem {
            kind: super::errors::Kind::Refused,
            message: e.to_string(),
            hint: Some(format!(
                "to add names with the same key: truc pki renew --dir {} --hub {id} --san NAME,…",
                dir.display()
            )),
        }
        .into(),
        _ => e.into(),
    }
}

/// Unix seconds as a date for people.
fn date(secs: i64) -> String {
    super::output::time(secs.saturating_mul(1000))
}

/// What a renewal or a forced re-issue replaced, and what to do about it.
fn replaced_lines(dir: &std::path::Path, replaced: &Option<(Option<Serial>, PathBuf)>) {
    if let Some((serial, kept)) = replaced {
        println!("old certificate kept as {} (not revoked)", kept.display());
        match serial {
            Some(s) => println!(
                "once the new certificate is installed, revoke the old one:\n  truc pki revoke --dir {} --serial {s}",
                dir.display()
            ),
            None => println!(
                "its serial could not be read: find it in {}",
                dir.join("issued.tsv").display()
            ),
        }
    }
}

pub(crate) fn run(cmd: PkiCommand) -> anyhow::Result<()> {
    match cmd {
        PkiCommand::Init {
            dir,
            hub_name,
            san,
            out,
        } => {
            let pki = Pki::init(&dir, &hub_name, &san)?;
            out.object(
                serde_json::json!({
                    "ca": pki.ca_pem_path(), "hub": pki.hub_dir(), "receipt_key": pki.receipt_pub_path(),
                    "witness_key": pki.witness_pub_path(), "crl": pki.crl_path(),
                }),
                || {
                    format!(
                        "axis CA        {}\nhub identity   {}/\nreceipt key    {} (give this to auditors)\n\
                         witness key    {} (give this to peers)\nCRL            {}\n",
                        pki.ca_pem_path().display(),
                        pki.hub_dir().display(),
                        pki.receipt_pub_path().display(),
                        pki.witness_pub_path().display(),
                        pki.crl_path().display()
                    )
                },
            );
        }
        PkiCommand::Issue {
            dir,
            agency,
            operator,
            auditor,
            hub,
            server,
            san,
            name,
            key_type,
            days,
            force,
            out,
        } => {
            let pki = Pki::open(&dir)?;
            let key_type: KeyType = key_type.parse()?;
            let opts = IssueOptions {
                key_type,
                days,
                sans: san,
                ..IssueOptions::default()
            };
            let (who, done) = match server {
                Some(server) => (format!("server {server}"), pki.issue_server(&server, &opts, force)?),
                None => {
                    let principal = principal(agency, operator, auditor, hub)?;
                    let display = name.unwrap_or_else(|| principal.to_string());
                    let done = if force {
                        pki.reissue(&principal, &display, &opts).context("issuing")?
                    } else {
                        let dir = pki
                            .issue(&principal, &display, &opts)
                            .map_err(|e| hub_exists_hint(e, &principal, &dir))?;
                        truc_pki::Reissued { dir, replaced: None }
                    };
                    (principal.to_string(), done)
                }
            };
            let info = truc_pki::CertInfo::from_pem_file(&done.dir.join("cert.pem"))?;
            if out.format() != Format::Table {
                out.object(issued_json(&who, &done, &info), String::new);
                return Ok(());
            }
            println!("{who} ({}) → {}/", key_type.as_str(), done.dir.display());
            if !info.names.is_empty() {
                println!("names: {}", info.names.join(", "));
            }
            if who.starts_with("urn:truc:hub:") {
                println!(
                    "receipt key: {} (give it to auditors and peers)\nwitness key: {} (give it to peers)\n\
                     run it with: trucd --identity {}",
                    done.dir.join("receipts.pub").display(),
                    done.dir.join("witness.pub").display(),
                    done.dir.display()
                );
            }
            replaced_lines(&dir, &done.replaced);
        }
        PkiCommand::Renew {
            dir,
            agency,
            operator,
            auditor,
            hub,
            san,
            days,
            new_key,
            out,
        } => {
            let pki = Pki::open(&dir)?;
            let principal = principal(agency, operator, auditor, hub)?;
            let opts = IssueOptions {
                days,
                sans: san,
                ..IssueOptions::default()
            };
            let done = pki.renew(&principal, &opts, new_key)?;
            let info = truc_pki::CertInfo::from_pem_file(&done.dir.join("cert.pem"))?;
            if out.format() != Format::Table {
                let mut v = issued_json(&principal.to_string(), &done, &info);
                v["new_key"] = new_key.into();
                out.object(v, String::new);
                return Ok(());
            }
            println!(
                "renewed {principal}: serial {}, valid until {} ({}) → {}/",
                info.serial,
                date(info.not_after),
                if new_key { "a new key" } else { "the same key" },
                done.dir.display()
            );
            replaced_lines(&dir, &done.replaced);
        }
        PkiCommand::List { dir, out } => {
            let pki = Pki::open(&dir)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64);
            let list = pki.list()?;
            let state = |l: &truc_pki::Listed| match l.issued.revoked_at {
                Some(_) => "revoked",
                None if l.issued.not_after < now => "expired",
                None if !l.current => "replaced",
                None => "valid",
            };
            let rows: Vec<_> = list
                .iter()
                .map(|l| {
                    serde_json::json!({
                        "serial": l.issued.serial.to_string(), "role": l.role, "name": l.name,
                        "subject": l.subject, "principal": l.issued.principal_uri,
                        "not_after_unix": l.issued.not_after, "revoked_at_unix": l.issued.revoked_at,
                        "current": l.current, "state": state(l), "path": l.issued.path,
                    })
                })
                .collect();
            let table = |headers: bool| {
                let mut t = String::new();
                if headers {
                    t += &format!(
                        "{:<6} {:<9} {:<20} {:<24} {:<9} SUBJECT\n",
                        "SERIAL", "ROLE", "NAME", "EXPIRES", "STATE"
                    );
                }
                for l in &list {
                    let state = match (state(l), l.issued.revoked_at) {
                        ("revoked", Some(t)) => format!("revoked {}", &date(t)[..10]),
                        (s, _) => s.to_string(),
                    };
                    t += &format!(
                        "{:<6} {:<9} {:<20} {:<24} {:<9} {}\n",
                        l.issued.serial.to_string(),
                        l.role,
                        l.name,
                        date(l.issued.not_after),
                        state,
                        l.subject.as_deref().unwrap_or("-")
                    );
                }
                t
            };
            out.rows(&LIST_COLUMNS.map(String::from), rows, serde_json::Value::Array, table);
        }
        PkiCommand::Revoke {
            dir,
            agency,
            serial,
            out,
        } => {
            let pki = Pki::open(&dir)?;
            let revoked = match (agency, serial) {
                (Some(code), _) => pki.revoke_principal(&Principal::Agency(AgencyCode::parse(&code)?))?,
                (_, Some(s)) => pki.revoke_serial(s.parse::<Serial>()?)?,
                _ => anyhow::bail!("name an --agency or a --serial"),
            };
            if out.format() != Format::Table {
                let serials: Vec<String> = revoked.iter().map(|s| s.to_string()).collect();
                out.object(
                    serde_json::json!({"revoked": serials, "crl": pki.crl_path()}),
                    String::new,
                );
                return Ok(());
            }
            for s in &revoked {
                println!("revoked serial {s}");
            }
            println!("CRL written to {}", pki.crl_path().display());
        }
    }
    Ok(())
}

/// `pki list -o csv`'s columns: the keys of a row's JSON.
const LIST_COLUMNS: [&str; 10] = [
    "serial",
    "role",
    "name",
    "subject",
    "principal",
    "not_after_unix",
    "revoked_at_unix",
    "current",
    "state",
    "path",
];

fn issued_json(who: &str, done: &truc_pki::Reissued, info: &truc_pki::CertInfo) -> serde_json::Value {
    let (old_serial, kept) = match &done.replaced {
        Some((s, k)) => (s.map(|s| s.to_string()), Some(k.clone())),
        None => (None, None),
    };
    serde_json::json!({
        "subject": who, "dir": done.dir, "serial": info.serial.to_string(), "names": info.names,
        "not_after_unix": info.not_after, "replaced_serial": old_serial, "replaced_kept_as": kept,
    })
}
