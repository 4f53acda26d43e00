//! `truc audit receipts --document ID --follow-hops` and `truc audit verify`
//! of what it writes: a document's receipts at every hub it crossed
//! (`truc_client::audit::hops`).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::Context;
use serde_json::json;
use truc_client::audit::hops::{self, HopsExport};
use truc_client::audit::AuditQuery;
use truc_client::Client;
use truc_core::tree_head::TreeHeadVerifier;

use super::output;

/// `ID=ADDRESS[,IDENTITY_DIR]`: where another hub listens, and the identity
/// to read its receipts with (default: the one of `--identity`).
#[derive(Debug, Clone)]
pub(crate) struct Hop {
    id: String,
    address: String,
    identity: Option<PathBuf>,
}

pub(crate) fn parse_hop(s: &str) -> Result<Hop, String> {
    let (id, rest) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected ID=ADDRESS[,IDENTITY_DIR], e.g. national=national.truc.gov.vn:7443"))?;
    truc_core::routing::HubId::parse(id).map_err(|e| e.to_string())?;
    let (address, identity) = match rest.split_once(',') {
        Some((a, dir)) => (a, Some(PathBuf::from(dir))),
        None => (rest, None),
    };
    let address = super::hub_address(address)?;
    Ok(Hop {
        id: id.to_string(),
        address,
        identity,
    })
}

/// `ID=PATH`: a hub's receipt public key.
pub(crate) fn parse_hop_key(s: &str) -> Result<(String, PathBuf), String> {
    let (id, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?}: expected ID=PATH, e.g. national=national-receipts.pub"))?;
    truc_core::routing::HubId::parse(id).map_err(|e| e.to_string())?;
    Ok((id.to_string(), PathBuf::from(path)))
}

/// Export the document's receipts at the hub `first` and at every hub of
/// `hops` it was forwarded to; write them to `out`, or print a summary.
pub(crate) async fn export(
    first: &Client,
    default_identity: Option<&PathBuf>,
    hops: &[Hop],
    query: &AuditQuery,
    out: Option<&PathBuf>,
    o: &output::OutputArgs,
) -> anyhow::Result<()> {
    let info = first.hub_info().await?;
    let first_id = info
        .name
        .strip_prefix("urn:truc:hub:")
        .unwrap_or(&info.name)
        .to_string();
    let mut others = HashMap::new();
    for h in hops {
        let dir = h
            .identity
            .as_ref()
            .or(default_identity)
            .context("--hop needs an identity: ID=ADDRESS,IDENTITY_DIR, or --identity")?;
        let c = Client::connect_dir(&h.address, dir)
            .await
            .with_context(|| format!("connecting to hub {} at {}", h.id, h.address))?;
        others.insert(h.id.clone(), c);
    }
    let export = hops::export_hops(&first_id, first, &others, query).await?;
    let visited: Vec<&str> = export.hubs.iter().map(|h| h.hub_id.as_str()).collect();
    match out {
        Some(path) => {
            std::fs::write(path, export.to_json() + "\n").with_context(|| format!("writing {}", path.display()))?;
            o.object(json!({"out": path.display().to_string(), "hubs": visited}), || {
                format!(
                    "exported the receipts of {:?} at {} hub(s) ({}) to {}; check it with `truc audit verify {} \
                         --hub-key <{first_id}'s receipts.pub> --hop-key <id>=<receipts.pub> …`\n",
                    export.document_id,
                    visited.len(),
                    visited.join(" → "),
                    path.display(),
                    path.display()
                )
            });
        }
        None => println!("{}", export.to_json()),
    }
    Ok(())
}

/// Check a hops export: `first_key` is the key of the hub it was taken at
/// (its first hub), `keys` the others'.
pub(crate) fn verify(
    text: &str,
    first_key: TreeHeadVerifier,
    keys: &[(String, PathBuf)],
    o: &output::OutputArgs,
) -> anyhow::Result<()> {
    let export = HopsExport::from_json(text)?;
    let first = export.hubs.first().context("the export holds no hub")?;
    let mut verifiers = HashMap::new();
    verifiers.insert(first.hub_id.clone(), first_key);
    for (id, path) in keys {
        verifiers.insert(id.clone(), super::audit::load_key(path)?);
    }
    let report = hops::verify_hops(&export, &verifiers)?;
    let gaps: Vec<String> = report
        .gaps
        .iter()
        .map(|(holder, other, what)| format!("{holder} {what} → {other} (no export of {other})"))
        .collect();
    o.object(
        json!({
            "verified": true, "hubs": report.hubs, "links": report.links.len(), "gaps": gaps,
        }),
        || {
            let mut s = format!(
                "verified the receipts of {:?} at {} hub(s): {}; {} receipt(s) of one hub held by another checked \
                 against that hub's log\n",
                export.document_id,
                report.hubs.len(),
                report
                    .hubs
                    .iter()
                    .map(|(h, n)| format!("{h} ({n} receipts)"))
                    .collect::<Vec<_>>()
                    .join(", "),
                report.links.len()
            );
            for g in &gaps {
                s.push_str(&format!("GAP: {g}\n"));
            }
            s
        },
    );
    anyhow::ensure!(
        report.gaps.is_empty(),
        "{} hop(s) lead to hubs whose receipts are not in the export",
        report.gaps.len()
    );
    Ok(())
}
