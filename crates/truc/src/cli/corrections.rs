//! `truc revoke`, `truc update` and `truc replace`: corrections as the
//! axis sends them (edXML BussinessDocType 1, 2, 3). A revoke and an update
//! go under the original's own document id, with the reason; a replacement
//! is a new document naming the old ones, each with the agencies it is
//! replaced for.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::Context;
use truc_proto::v1::{
    BusinessType, DocumentHeader, Priority, ReceiverChange, ReceiverType, Replacement, SendResponse, TrackResponse,
    TransportState,
};

use super::output;
use super::Conn;

#[derive(Debug, clap::Args)]
pub(crate) struct RevokeArgs {
    /// Your document to revoke (its DocumentId); the revoke is sent under
    /// this same id, as the axis sends it. Sending the same revoke again is
    /// answered with the first acceptance.
    document_id: String,
    /// Why (edXML BussinessDocReason), e.g. "Thu hồi văn bản điện tử".
    #[arg(long)]
    reason: String,
    /// Revoke it for these recipients only; default: all its recipients
    /// (copies withdrawn already are skipped).
    #[arg(long, value_delimiter = ',', value_name = "CODE[,CODE…]", value_parser = super::agency_code)]
    to: Vec<String>,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, clap::Args)]
pub(crate) struct UpdateArgs {
    /// Your document whose recipients change (its DocumentId); the update
    /// is sent under this same id, as the axis sends it.
    document_id: String,
    /// Agencies to add: they receive the original and this update.
    #[arg(long, value_delimiter = ',', value_name = "CODE[,CODE…]", value_parser = super::agency_code)]
    add: Vec<String>,
    /// Agencies to remove: a copy not yet delivered is withdrawn; one that
    /// has it receives this update and answers 15 or 16.
    #[arg(long, value_delimiter = ',', value_name = "CODE[,CODE…]", value_parser = super::agency_code)]
    remove: Vec<String>,
    /// Why (edXML BussinessDocReason).
    #[arg(long)]
    reason: String,
    #[command(flatten)]
    conn: Conn,
}

#[derive(Debug, clap::Args)]
#[command(override_usage = "truc replace [OPTIONS] OLD_ID[:CODE[,CODE…]]… FILE")]
pub(crate) struct ReplaceArgs {
    /// The old documents, each as OLD_ID or OLD_ID:CODE[,CODE…] (the
    /// agencies it is replaced for; without, all its recipients), then the
    /// new document's file, last. One file per document.
    #[arg(required = true, num_args = 2.., value_name = "OLD_ID[:CODES]|FILE")]
    args: Vec<String>,
    /// The new document's id (edXML DocumentId) as your register numbers
    /// it: <your code>,<yyyy/MM/dd>,<number>/<notation>. Required: an id is
    /// never made up.
    #[arg(long, required = true)]
    id: Option<String>,
    /// Its recipients; default: every agency named for an old document.
    #[arg(long, value_delimiter = ',', value_name = "CODE[,CODE…]", value_parser = super::agency_code)]
    to: Vec<String>,
    /// Why (edXML BussinessDocReason).
    #[arg(long, default_value = "")]
    reason: String,
    /// Trích yếu of the new document.
    #[arg(long, default_value = "")]
    subject: String,
    /// Độ khẩn, by name or number (0..=4).
    #[arg(long, default_value = "thuong", value_parser = super::names::parser::<Priority>())]
    priority: Priority,
    /// Document type, e.g. "Công văn".
    #[arg(long, default_value = "")]
    document_type: String,
    /// Media type of the file.
    #[arg(long, default_value = "application/octet-stream")]
    content_type: String,
    #[command(flatten)]
    conn: Conn,
}

/// The recipients whose copy still counts (not withdrawn, not redirected
/// to a successor, which has a row of its own).
fn current(t: &TrackResponse) -> Vec<String> {
    t.recipients
        .iter()
        .filter(|r| r.state != TransportState::Withdrawn as i32 && r.state != TransportState::Redirected as i32)
        .map(|r| r.agency.clone())
        .collect()
}

fn print(conn: &Conn, what: &str, document_id: &str, resp: &SendResponse) {
    conn.out.object(output::acceptance_json(document_id, resp), || {
        format!(
            "{} {what} of {document_id:?} as hub document {} at {}\n",
            if resp.duplicate {
                "already accepted:"
            } else {
                "accepted:"
            },
            resp.hub_document_id,
            output::time(resp.accepted_at_unix_ms),
        )
    });
}

pub(crate) async fn revoke(a: RevokeArgs) -> anyhow::Result<()> {
    let client = a.conn.client().await?;
    let t = client.track(&a.document_id).await?;
    // All its recipients (but those redirected, whose successors have rows
    // of their own): the same revoke sent again is then the same header,
    // and the hub skips copies withdrawn already.
    let to = if a.to.is_empty() {
        t.recipients
            .iter()
            .filter(|r| r.state != TransportState::Redirected as i32)
            .map(|r| r.agency.clone())
            .collect()
    } else {
        a.to.clone()
    };
    let header = DocumentHeader {
        to,
        document_id: a.document_id.clone(),
        reference_document_id: a.document_id.clone(),
        business_type: BusinessType::Revoke as i32,
        business_reason: a.reason.clone(),
        subject: t.subject.clone(),
        priority: t.priority,
        ..Default::default()
    };
    let resp = client
        .send(truc_client::sign_document(client.identity(), header, Vec::new())?)
        .await?;
    print(&a.conn, "revoke", &a.document_id, &resp);
    Ok(())
}

pub(crate) async fn update(a: UpdateArgs) -> anyhow::Result<()> {
    if a.add.is_empty() && a.remove.is_empty() {
        return Err(super::errors::Problem::usage("nothing to update")
            .hint("give --add CODES and/or --remove CODES")
            .into());
    }
    if let Some(both) = a.add.iter().find(|c| a.remove.contains(c)) {
        return Err(super::errors::Problem::usage(format!("{both} is both added and removed")).into());
    }
    let client = a.conn.client().await?;
    let t = client.track(&a.document_id).await?;
    // Agencies an earlier update removed keep their row (they may have had
    // the document): they are not recipients any more.
    let mut gone: BTreeSet<&str> = BTreeSet::new();
    for c in t
        .corrections
        .iter()
        .filter(|c| c.business_type == BusinessType::Update as i32)
    {
        for x in &c.agencies {
            if let Some(code) = x.strip_prefix('-') {
                gone.insert(code);
            } else if let Some(code) = x.strip_prefix('+') {
                gone.remove(code);
            }
        }
    }
    let mut to: Vec<String> = current(&t)
        .into_iter()
        .filter(|c| !a.remove.contains(c) && !gone.contains(c.as_str()))
        .collect();
    for c in &a.add {
        if !to.contains(c) {
            to.push(c.clone());
        }
    }
    let mut changes: Vec<ReceiverChange> = a
        .add
        .iter()
        .map(|c| ReceiverChange {
            organ_id: c.clone(),
            receiver_type: ReceiverType::Added as i32,
        })
        .collect();
    changes.extend(a.remove.iter().map(|c| ReceiverChange {
        organ_id: c.clone(),
        receiver_type: ReceiverType::Removed as i32,
    }));
    let header = DocumentHeader {
        to,
        document_id: a.document_id.clone(),
        reference_document_id: a.document_id.clone(),
        business_type: BusinessType::Update as i32,
        business_reason: a.reason.clone(),
        receiver_changes: changes,
        subject: t.subject.clone(),
        priority: t.priority,
        ..Default::default()
    };
    let resp = client
        .send(truc_client::sign_document(client.identity(), header, Vec::new())?)
        .await?;
    print(&a.conn, "update", &a.document_id, &resp);
    Ok(())
}

/// `OLD_ID` or `OLD_ID:CODE[,CODE…]`: the part after the last colon is
/// agencies only if every one of them is an agency code.
fn old_document(arg: &str) -> (String, Vec<String>) {
    if let Some((id, codes)) = arg.rsplit_once(':') {
        let parsed: Result<Vec<String>, _> = codes.split(',').map(super::agency_code).collect();
        if let Ok(codes) = parsed {
            if !id.is_empty() {
                return (id.to_string(), codes);
            }
        }
    }
    (arg.to_string(), Vec::new())
}

pub(crate) async fn replace(a: ReplaceArgs) -> anyhow::Result<()> {
    let (olds, file) = a.args.split_at(a.args.len() - 1);
    let file = PathBuf::from(&file[0]);
    let payload = std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
    let client = a.conn.client().await?;
    let mut replacements = Vec::new();
    let mut named: BTreeSet<String> = BTreeSet::new();
    for o in olds {
        let (id, codes) = old_document(o);
        let codes = if codes.is_empty() {
            // Without agencies: all its recipients (as the hub reads it too).
            let t = client.track(&id).await?;
            named.extend(current(&t));
            Vec::new()
        } else {
            named.extend(codes.iter().cloned());
            codes
        };
        replacements.push(Replacement {
            document_id: id,
            organ_ids: codes,
        });
    }
    let to = if a.to.is_empty() {
        named.into_iter().collect()
    } else {
        a.to.clone()
    };
    let from = client
        .identity()
        .principal
        .agency()
        .map(|c| c.to_string())
        .ok_or_else(|| anyhow::anyhow!("only an agency sends documents"))?;
    let document_id =
        a.id.clone()
            .ok_or_else(|| anyhow::anyhow!("pass --id {from},<yyyy/MM/dd>,<number>/<notation>"))?;
    let header = DocumentHeader {
        to,
        document_id: document_id.clone(),
        business_type: BusinessType::Replace as i32,
        business_reason: a.reason.clone(),
        replacements,
        subject: a.subject.clone(),
        document_type: a.document_type.clone(),
        priority: a.priority as i32,
        content_type: a.content_type.clone(),
        file_name: file
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        ..Default::default()
    };
    let resp = client
        .send(truc_client::sign_document(client.identity(), header, payload)?)
        .await?;
    print(&a.conn, "replacement", &document_id, &resp);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::old_document;

    #[test]
    fn old_documents_with_and_without_agencies() {
        let id = "000.00.00.G22,2026/11/23,7/VPCP";
        assert_eq!(old_document(id), (id.to_string(), vec![]));
        assert_eq!(
            old_document(&format!("{id}:000.00.00.H26,G09.01")),
            (id.to_string(), vec!["000.00.00.H26".to_string(), "G09.01".to_string()])
        );
        // A colon in the id itself is kept when what follows is no agency.
        assert_eq!(old_document("a:b/c"), ("a:b/c".to_string(), vec![]));
    }
}
