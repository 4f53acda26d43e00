//! `truc demo --federation`: three real hubs on sled in a temporary
//! directory, each with a CA of its own, deployed as the axis is — the
//! Quảng Ninh provincial axis (h49) and the Ministry of Finance's (g12)
//! connected through the national axis of the Government Office. A
//! department in Quảng Ninh sends one signed công văn to the Government
//! Office (at the national hub) and to a unit of the Ministry (at g12); it
//! crosses the hubs hop by hop, arrives verified against the province's CA,
//! the unit registers it (01, 03), and the sender's hub shows every
//! recipient's state and the next hub's signed receipt.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use prost::Message;
use truc_client::Client;
use truc_core::document::SigningTrust;
use truc_core::tree_head::TreeHeadVerifier;
use truc_core::{AgencyCode, Principal};
use truc_hub::config::{OriginConfig, PeerConfig};
use truc_pki::{IssueOptions, Pki};
use truc_proto::names::Wire;
use truc_proto::v1::{
    Delivery, DocumentHeader, ListReceiptsRequest, ProvenReceipt, Receipt, ReceiptEvent, StatusCode, TransportState,
};

const SENDER: (&str, &str) = ("000.00.01.H49", "Sở Nội vụ tỉnh Quảng Ninh");
const VPCP: (&str, &str) = ("000.00.00.G22", "Văn phòng Chính phủ");
const UNIT: (&str, &str) = ("000.00.02.G12", "Vụ Tổ chức cán bộ, Bộ Tài chính");

/// One hub of the demo: its PKI, its running instance, its operator.
struct DemoHub {
    id: &'static str,
    pki: Pki,
    config: truc_hub::Config,
    running: Option<truc_hub::RunningHub>,
    addr: String,
}

impl DemoHub {
    async fn start(
        root: &Path,
        id: &'static str,
        serves: &[&str],
        f: impl FnOnce(&mut truc_hub::Config),
    ) -> anyhow::Result<DemoHub> {
        let pki = Pki::init(&root.join(format!("pki-{id}")), id, &[]).with_context(|| format!("pki init {id}"))?;
        pki.issue(
            &Principal::parse_uri("urn:truc:operator:demo")?,
            "Demo operator",
            &IssueOptions::default(),
        )?;
        let mut config = truc_hub::Config {
            listen: "127.0.0.1:0".parse()?,
            data_dir: root.join(format!("data-{id}")),
            identity: pki.hub_dir(),
            ..truc_hub::Config::default()
        };
        config.federation.serves = serves.iter().map(|s| s.to_string()).collect();
        f(&mut config);
        let running = truc_hub::start(config.clone())
            .await
            .with_context(|| format!("hub {id}"))?;
        let addr = running.addr.to_string();
        Ok(DemoHub {
            id,
            pki,
            config,
            running: Some(running),
            addr,
        })
    }

    /// This hub as another hub's `[[peers]]` entry.
    fn as_peer(&self, serves: &[&str]) -> PeerConfig {
        PeerConfig {
            id: self.id.into(),
            address: self.addr.clone(),
            ca: self.pki.ca_pem_path(),
            serves: serves.iter().map(|s| s.to_string()).collect(),
            ..PeerConfig::default()
        }
    }

    /// Stop, change the configuration, start again on the same port.
    async fn reconfigure(&mut self, f: impl FnOnce(&mut truc_hub::Config)) -> anyhow::Result<()> {
        if let Some(r) = self.running.take() {
            r.shutdown().await?;
        }
        f(&mut self.config);
        self.config.listen = self.addr.parse()?;
        self.running = Some(truc_hub::start(self.config.clone()).await?);
        Ok(())
    }

    fn operator_dir(&self) -> anyhow::Result<std::path::PathBuf> {
        Ok(self
            .pki
            .identity_dir(&Principal::parse_uri("urn:truc:operator:demo")?)?)
    }

    /// Register `(code, name)` here and connect as it.
    async fn agency(&self, (code, name): (&str, &str)) -> anyhow::Result<Client> {
        let principal = Principal::Agency(AgencyCode::parse(code)?);
        let dir = self.pki.issue(&principal, name, &IssueOptions::default())?;
        Client::connect_dir(&self.addr, &self.operator_dir()?)
            .await?
            .add_agency(code, name)
            .await?;
        Ok(Client::connect_dir(&self.addr, &dir).await?)
    }

    async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(r) = self.running.take() {
            r.shutdown().await?;
        }
        Ok(())
    }
}

/// The next delivery on a following stream (within 30 s).
async fn next_delivery(client: &Client) -> anyhow::Result<Delivery> {
    let mut s = client.receive(8, true).await?;
    tokio::time::timeout(Duration::from_secs(30), s.message())
        .await
        .context("nothing arrived within 30 s")??
        .context("the stream ended")
}

/// Ask `check` every 100 ms for up to 30 s.
async fn until<F, Fut>(what: &str, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while tokio::time::Instant::now() < deadline {
        if check().await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    anyhow::bail!("timed out waiting for {what}")
}

pub(crate) async fn run(root: &Path) -> anyhow::Result<()> {
    println!("1. Three hubs, each with a CA of its own, as the axis is deployed:");
    let mut national = DemoHub::start(root, "national", &["*.G22", "G22.*"], |_| {}).await?;
    let h49 = DemoHub::start(root, "h49", &["*.H49", "H49.*"], |c| {
        c.federation.default_peer = Some("national".into());
        c.peers = vec![national.as_peer(&[])];
    })
    .await?;
    let g12 = DemoHub::start(root, "g12", &["*.G12", "G12.*"], |c| {
        c.federation.default_peer = Some("national".into());
        c.peers = vec![national.as_peer(&[])];
        c.origins = vec![OriginConfig {
            id: "h49".into(),
            ca: h49.pki.ca_pem_path(),
            crl: None,
            serves: vec!["*.H49".into(), "H49.*".into()],
        }];
    })
    .await?;
    let peers = vec![h49.as_peer(&["*.H49", "H49.*"]), g12.as_peer(&["*.G12", "G12.*"])];
    national.reconfigure(|c| c.peers = peers).await?;
    for (hub, role) in [
        (
            &h49,
            "Quảng Ninh provincial axis, serves *.H49; everything else → national",
        ),
        (
            &national,
            "national axis (Văn phòng Chính phủ), serves *.G22; *.H49 → h49, *.G12 → g12",
        ),
        (
            &g12,
            "Ministry of Finance axis, serves *.G12; everything else → national",
        ),
    ] {
        println!("   urn:truc:hub:{:<9} {}  {role}", hub.id, hub.addr);
    }

    let sender = h49.agency(SENDER).await?;
    let vpcp = national.agency(VPCP).await?;
    let unit = g12.agency(UNIT).await?;
    println!(
        "\n2. Agencies registered at their own hubs: {} at h49, {} at national, {} at g12",
        SENDER.0, VPCP.0, UNIT.0
    );
    until("the directory to reach h49", || async {
        let got = sender.lookup_agencies(&[UNIT.0.into()]).await?;
        Ok(got[0].registered && got[0].hub_id == "g12")
    })
    .await?;
    println!(
        "   h49 learned from the federated directory: {} is served by hub g12 (through national)",
        UNIT.0
    );

    let today =
        truc_core::Calendar::at_offset(super::output::axis_offset_minutes())?.local_date(truc_core::now_unix_ms());
    let id = truc_edxml::document_id(SENDER.0, today, "45", "SNV-VP");
    let header = DocumentHeader {
        to: vec![VPCP.0.into(), UNIT.0.into()],
        document_id: id.clone(),
        subject: "V/v báo cáo số lượng cán bộ, công chức năm 2026".into(),
        code_number: "45".into(),
        code_notation: "SNV-VP".into(),
        document_type: "Công văn".into(),
        promulgation_place: "Quảng Ninh".into(),
        promulgation_date: truc_edxml::EdDate::Date(today).to_string(),
        ..Default::default()
    };
    let doc = truc_client::sign_document(sender.identity(), header, b"%PDF-1.4 (cong van 45/SNV-VP)".to_vec())?;
    let sent = sender.send(doc).await?;
    println!(
        "\n3. {} ({}) signed công văn 45/SNV-VP for {} and {}; h49 accepted it as document {}:\n   \
         the copy for both went, in the same commit, into h49's outbox for its next hop, national",
        SENDER.0, SENDER.1, VPCP.0, UNIT.0, sent.hub_document_id
    );

    let origin_ca = truc_pki::read_cert_ders(h49.pki.ca_pem_path())?;
    let origin = SigningTrust::new(&origin_ca, &[])?;
    println!("\n4. Each recipient receives it at its own hub and checks the signature against h49's CA:");
    for (client, (code, name), hub) in [(&vpcp, VPCP, "national"), (&unit, UNIT, "g12")] {
        let d = next_delivery(client).await?;
        let doc = d.document.context("a status notice instead of the document")?;
        let checked = truc_client::verify_received(&doc, &origin)?;
        client.ack(vec![d.delivery_id]).await?;
        println!(
            "   {code} ({name}) at hub {hub}: {:?} from {}, signature verified, acknowledged",
            checked.header.subject, checked.from
        );
    }
    for (code, what) in [
        (StatusCode::Arrived, "đã đến"),
        (StatusCode::Registered, "vào sổ văn bản đến số 812"),
    ] {
        unit.report_status(SENDER.0, &id, code as i32, what, None).await?;
    }
    println!("   {} reported 01 (arrived) and 03 (registered) at g12", UNIT.0);

    println!("\n5. What comes back to the sender's hub, h49:");
    // One stream for both notices (a stream holds leases on what it was
    // handed; a second stream would wait for them to run out).
    let mut notices = sender.receive(8, true).await?;
    for _ in 0..2 {
        let d = tokio::time::timeout(Duration::from_secs(30), notices.message())
            .await
            .context("no status notice within 30 s")??
            .context("the stream ended")?;
        let n = d.status.context("a status notice")?;
        sender.ack(vec![d.delivery_id]).await?;
        println!(
            "   status notice: {} reported {:02} {:?} (relayed g12 → national → h49)",
            n.reporter, n.code, n.description
        );
    }
    until("both copies to be reported delivered", || async {
        let t = sender.track(&id).await?;
        Ok(t.recipients.iter().all(|r| r.state == TransportState::Delivered as i32))
    })
    .await?;
    let t = sender.track(&id).await?;
    println!("   truc track at h49:");
    for r in &t.recipients {
        println!(
            "     {:<14} {:<10} via hub {:<9} status {}",
            r.agency,
            Wire::<TransportState>::from(r.state),
            r.via_hub,
            if r.status == 0 {
                "-".to_string()
            } else {
                format!("{:02}", r.status)
            }
        );
    }

    let op = Client::connect_dir(&h49.addr, &h49.operator_dir()?).await?;
    let pages = op
        .all_receipts(ListReceiptsRequest {
            document_from: SENDER.0.into(),
            document_id: id.clone(),
            ..Default::default()
        })
        .await?;
    let forwarded = pages
        .into_iter()
        .flat_map(|p| p.receipts)
        .map(|r| Receipt::decode(r.receipt.as_slice()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|r| r.event == ReceiptEvent::Forwarded as i32)
        .context("no FORWARDED receipt at h49")?;
    let next = ProvenReceipt::decode(forwarded.peer_receipt.as_slice())?;
    let national_key = TreeHeadVerifier::from_pem(&std::fs::read_to_string(national.pki.receipt_pub_path())?)?;
    let (accepted, head) = national_key.verify_proven_receipt(&next)?;
    println!(
        "\n6. h49's FORWARDED receipt #{} holds national's own ACCEPTED receipt #{} (actor {}),\n   verified with \
         national's receipts.pub alone: tree head size {}, inclusion proof of {} hashes",
        forwarded.index,
        accepted.index,
        accepted.actor,
        head.tree_size,
        next.inclusion_proof.len()
    );

    for hub in [h49, national, g12] {
        hub.shutdown().await?;
    }
    println!("\n7. Hubs stopped. docs/federation.md describes routing, trust and what each hub checks.");
    Ok(())
}
