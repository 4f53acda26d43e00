//! `truc demo`: a real hub on sled in a temporary directory with a fresh CA;
//! three agencies; one signed document to two of them, received, verified
//! and acknowledged.

use std::path::PathBuf;

use anyhow::Context;
use truc_client::Client;
use truc_core::tree_head::TreeHeadVerifier;
use truc_core::{AgencyCode, Principal};
use truc_pki::{IssueOptions, Pki};
use truc_proto::names::Wire;
use truc_proto::v1::{DocumentHeader, Priority, Receipt};

use super::output;

#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Keep the demo's directory (PKI, data, received files) here instead
    /// of a temporary directory that is removed at the end.
    #[arg(long, value_name = "DIR")]
    keep: Option<PathBuf>,
}

const AGENCIES: &[(&str, &str)] = &[
    ("000.00.00.G22", "Văn phòng Chính phủ"),
    ("000.00.00.H26", "UBND Thành phố Hà Nội"),
    ("000.00.00.H29", "UBND Thành phố Hồ Chí Minh"),
];

pub(crate) async fn run(a: DemoArgs) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let root = match &a.keep {
        Some(d) => {
            std::fs::create_dir_all(d)?;
            d.clone()
        }
        None => tmp.path().to_path_buf(),
    };
    let pki_dir = root.join("pki");
    println!(
        "1. Axis CA and identities (rcgen, ECDSA P-256) in {}",
        pki_dir.display()
    );
    let pki = Pki::init(&pki_dir, "demo", &[]).context("pki init")?;
    let mut dirs = Vec::new();
    for (code, name) in AGENCIES {
        let d = pki.issue(
            &Principal::Agency(AgencyCode::parse(code)?),
            name,
            &IssueOptions::default(),
        )?;
        println!("   agency   {code:<14} {name}");
        dirs.push(d);
    }
    let op_dir = pki.issue(
        &Principal::parse_uri("urn:truc:operator:demo")?,
        "Demo operator",
        &IssueOptions::default(),
    )?;
    println!("   operator demo");

    let cfg = truc_hub::Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: root.join("data"),
        identity: pki.hub_dir(),
        ..truc_hub::Config::default()
    };
    let hub = truc_hub::start(cfg).await?;
    let addr = hub.addr.to_string();
    println!(
        "\n2. Hub listening on {addr} (mTLS), sled store in {}",
        root.join("data").display()
    );

    let ops = Client::connect_dir(&addr, &op_dir).await?;
    for (code, name) in AGENCIES {
        ops.add_agency(code, name).await?;
    }
    println!("   operator registered {} agencies", AGENCIES.len());

    let sender = Client::connect_dir(&addr, &dirs[0]).await?;
    let payload = "CÔNG VĂN\nVề việc triển khai Trục liên thông văn bản quốc gia.\n"
        .as_bytes()
        .to_vec();
    // A công văn numbered as a records office numbers it: the id is
    // <sender>,<promulgation date, local>,<number>/<notation>. The number is
    // the demo's own (a fresh register: 1); the date is today at the axis's
    // offset (output::axis_offset_minutes: TRUC_UTC_OFFSET or +07:00).
    let today = truc_core::Calendar::at_offset(output::axis_offset_minutes())?.local_date(truc_core::now_unix_ms());
    let (number, notation) = ("1", "VPCP-KSTT");
    let document_id = truc_edxml::document_id(AGENCIES[0].0, today, number, notation);
    let header = DocumentHeader {
        to: vec![AGENCIES[1].0.into(), AGENCIES[2].0.into()],
        document_id: document_id.clone(),
        subject: "Về việc triển khai Trục liên thông văn bản".into(),
        code_number: number.into(),
        code_notation: notation.into(),
        document_type: "Công văn".into(),
        priority: Priority::Urgent as i32,
        promulgation_date: truc_edxml::EdDate::Date(today).to_string(),
        promulgation_place: "Hà Nội".into(),
        signer: Some(truc_proto::v1::SignerInfo {
            competence: "KT. BỘ TRƯỞNG, CHỦ NHIỆM".into(),
            position: "Phó Chủ nhiệm".into(),
            full_name: "Nguyễn Văn A".into(),
        }),
        content: "Đề nghị các địa phương kết nối hệ thống quản lý văn bản với Trục liên thông văn bản quốc gia.".into(),
        to_places: vec!["Như trên".into(), "Lưu: VT, KSTT".into()],
        content_type: "text/plain; charset=utf-8".into(),
        file_name: "cong-van.txt".into(),
        ..Default::default()
    };
    let signer = header.signer.clone().unwrap_or_default();
    let doc = truc_client::sign_document(sender.identity(), header, payload.clone())?;
    let resp = sender.send(doc.clone()).await?;
    println!(
        "\n3. {} signed công văn số {number}/{notation} of {} (local date, UTC{}), signed by {} {}, \
         as {document_id:?} ({} bytes) and sent it to {} and {}",
        AGENCIES[0].0,
        truc_edxml::EdDate::Date(today),
        output::offset_label(output::axis_offset_minutes()),
        signer.position,
        signer.full_name,
        payload.len(),
        AGENCIES[1].0,
        AGENCIES[2].0
    );
    println!(
        "   hub accepted it as document {} once it was on disk",
        resp.hub_document_id
    );

    let verifier = TreeHeadVerifier::from_pem(&std::fs::read_to_string(pki.receipt_pub_path())?)?;
    let proven = resp.receipt.as_ref().context("no receipt")?;
    let (receipt, head): (Receipt, _) = verifier.verify_proven_receipt(proven)?;
    println!(
        "   receipt #{} verified with {} alone: tree head size {}, root {}…, inclusion proof of {} hashes",
        receipt.index,
        pki.receipt_pub_path()
            .strip_prefix(&root)
            .unwrap_or(&pki.receipt_pub_path())
            .display(),
        head.tree_size,
        &truc_core::hex(&head.root_hash)[..16],
        proven.inclusion_proof.len()
    );
    let again = sender.send(doc).await?;
    println!(
        "   sending it again is idempotent: duplicate={}, same hub document {}",
        again.duplicate, again.hub_document_id
    );

    println!("\n4. Each recipient receives, checks the signature itself, saves, acknowledges");
    for (i, dir) in dirs.iter().enumerate().skip(1) {
        let c = Client::connect_dir(&addr, dir).await?;
        let trust = truc_client::axis_trust(c.identity())?;
        let mut stream = c.receive(8, false).await?;
        while let Some(d) = stream.message().await? {
            let doc = d.document.as_ref().context("empty delivery")?;
            let checked = truc_client::verify_received(doc, &trust)?;
            anyhow::ensure!(doc.payload == payload, "payload differs");
            let out = root.join("inbox").join(AGENCIES[i].0);
            std::fs::create_dir_all(&out)?;
            std::fs::write(out.join(&checked.header.file_name), &doc.payload)?;
            c.ack(vec![d.delivery_id]).await?;
            println!(
                "   {} got {:?} from {} [{}], signature by {} verified, {} bytes identical, acknowledged",
                AGENCIES[i].0,
                checked.header.subject,
                checked.header.from,
                Wire::<Priority>::from(checked.header.priority),
                checked.from,
                doc.payload.len()
            );
        }
    }
    let list = ops.list_agencies().await?;
    let waiting: u64 = list.iter().map(|a| a.queued).sum();
    println!("\n5. Outboxes now hold {waiting} undelivered copies; every step is a receipt in the signed Merkle log.");
    hub.shutdown().await?;
    match &a.keep {
        Some(d) => println!("   files kept in {}", d.display()),
        None => println!("   hub stopped; temporary directory removed"),
    }
    println!("\nNext: run `trucd` and `truc` yourself — see README.md, \"Five-minute walk-through\".");
    Ok(())
}
