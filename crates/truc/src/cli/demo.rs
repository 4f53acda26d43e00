//! `truc demo`: a real hub on sled in a temporary directory with a fresh CA;
//! three agencies; one signed công văn (number and notation, place and date
//! of promulgation, signer and position, a Vietnamese subject, a PDF made
//! here as its attachment) to two of them, received, verified, saved and
//! acknowledged.

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
    /// Federation instead: three hubs, each with its own CA (a province's,
    /// the national one, a ministry's); a công văn from a Quảng Ninh
    /// department crosses them to the Government Office and to a unit of
    /// the Ministry of Finance, and its statuses come back.
    #[arg(long)]
    federation: bool,
}

/// The công văn's number and notation (số, ký hiệu), place, and subject.
const NUMBER: &str = "123";
const NOTATION: &str = "VPCP-KSTT";
const PLACE: &str = "Hà Nội";
const SUBJECT: &str = "V/v kết nối hệ thống quản lý văn bản với Trục liên thông văn bản quốc gia";

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
    if a.federation {
        super::demo_federation::run(&root).await?;
        if let Some(d) = &a.keep {
            println!("   files kept in {}", d.display());
        }
        return Ok(());
    }
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
    // A công văn numbered as a records office numbers it: the id is
    // <sender>,<promulgation date, local>,<number>/<notation>. The number is
    // the demo's own; the date is today at the axis's offset
    // (output::axis_offset_minutes: TRUC_UTC_OFFSET or +07:00).
    let today = truc_core::Calendar::at_offset(output::axis_offset_minutes())?.local_date(truc_core::now_unix_ms());
    let (number, notation) = (NUMBER, NOTATION);
    let document_id = truc_edxml::document_id(AGENCIES[0].0, today, number, notation);
    let signer = truc_proto::v1::SignerInfo {
        competence: "KT. BỘ TRƯỞNG, CHỦ NHIỆM".into(),
        position: "PHÓ CHỦ NHIỆM".into(),
        full_name: "Nguyễn Văn An".into(),
    };
    let payload = cong_van_pdf(today);
    let file_name = format!("{number}-{notation}.pdf");
    let meta = [truc_client::transfer::AttachmentMeta {
        content_id: "cid:cong-van".into(),
        name: file_name.clone(),
        description: format!("Công văn số {number}/{notation} (bản ký số)"),
        media_type: "application/pdf".into(),
    }];
    let sha = truc_core::sha256(&payload);
    let digests = truc_client::transfer::Digests {
        sha256: sha,
        size: payload.len() as u64,
        attachments: vec![sha],
        sizes: vec![payload.len() as u64],
    };
    let header = DocumentHeader {
        to: vec![AGENCIES[1].0.into(), AGENCIES[2].0.into()],
        document_id: document_id.clone(),
        subject: SUBJECT.into(),
        code_number: number.into(),
        code_notation: notation.into(),
        document_type: "Công văn".into(),
        priority: Priority::Urgent as i32,
        promulgation_date: truc_edxml::EdDate::Date(today).to_string(),
        promulgation_place: PLACE.into(),
        signer: Some(signer.clone()),
        content: "Đề nghị UBND các thành phố kết nối hệ thống quản lý văn bản và điều hành với Trục liên thông văn \
                  bản quốc gia, gửi, nhận văn bản điện tử có ký số trước ngày 31/12."
            .into(),
        to_places: vec!["Như trên;".into(), "Lưu: VT, KSTT.".into()],
        attachments: truc_client::transfer::manifest(&meta, &digests),
        content_type: meta[0].media_type.clone(),
        file_name: file_name.clone(),
        ..Default::default()
    };
    let doc = truc_client::sign_document(sender.identity(), header, payload.clone())?;
    let resp = sender.send(doc.clone()).await?;
    println!(
        "\n3. {} ({}) signed công văn số {number}/{notation}, {PLACE}, ngày {} (local date, UTC{}),\n   \
         {} {} {}: {SUBJECT:?}\n   with {file_name} ({} bytes, a PDF made by the demo), as {document_id:?}, and sent \
         it to {} and {}",
        AGENCIES[0].0,
        AGENCIES[0].1,
        truc_edxml::EdDate::Date(today),
        output::offset_label(output::axis_offset_minutes()),
        signer.competence,
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
            let h = &checked.header;
            let saved = out.join(&h.file_name);
            std::fs::write(&saved, &doc.payload)?;
            c.ack(vec![d.delivery_id]).await?;
            let s = h.signer.clone().unwrap_or_default();
            println!(
                "   {} ({}) got công văn số {}/{} from {} [{}], {}, ngày {}, {} {} {}: {:?}",
                AGENCIES[i].0,
                AGENCIES[i].1,
                h.code_number,
                h.code_notation,
                h.from,
                Wire::<Priority>::from(h.priority),
                h.promulgation_place,
                h.promulgation_date,
                s.competence,
                s.position,
                s.full_name,
                h.subject,
            );
            for a in &h.attachments {
                println!(
                    "     {} ({}, {} bytes, SHA-256 {}…) checked against the signed header, saved as {}",
                    a.name,
                    a.media_type,
                    a.size,
                    &truc_core::hex(&a.sha256)[..16],
                    saved.strip_prefix(&root).unwrap_or(&saved).display()
                );
            }
            println!("     signature by {} verified, acknowledged", checked.from);
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

/// The công văn as a one-page PDF (1.4): the national motto, the sender,
/// number and notation, place and date, subject, body and signer. Its page
/// is in Helvetica, whose encoding has no Vietnamese letters, so the page
/// text is written without diacritics; the document's Title (UTF-16) keeps
/// them. The cross-reference table holds each object's byte offset, as
/// readers expect.
fn cong_van_pdf(date: jiff::civil::Date) -> Vec<u8> {
    let lines = [
        "CONG HOA XA HOI CHU NGHIA VIET NAM".to_string(),
        "Doc lap - Tu do - Hanh phuc".into(),
        String::new(),
        "VAN PHONG CHINH PHU".into(),
        format!("So: {NUMBER}/{NOTATION}"),
        format!(
            "Ha Noi, ngay {:02} thang {:02} nam {}",
            date.day(),
            date.month(),
            date.year()
        ),
        "V/v ket noi he thong quan ly van ban voi Truc lien thong van ban quoc gia".into(),
        String::new(),
        "Kinh gui: UBND Thanh pho Ha Noi; UBND Thanh pho Ho Chi Minh.".into(),
        "De nghi UBND cac thanh pho ket noi he thong quan ly van ban va dieu hanh".into(),
        "voi Truc lien thong van ban quoc gia, gui, nhan van ban dien tu co ky so.".into(),
        String::new(),
        "KT. BO TRUONG, CHU NHIEM".into(),
        "PHO CHU NHIEM".into(),
        "Nguyen Van An".into(),
    ];
    let mut text = String::from("BT /F1 12 Tf 72 780 Td 18 TL\n");
    for l in &lines {
        let escaped = l.replace('\\', "\\\\").replace('(', "\\(").replace(')', "\\)");
        text += &format!("({escaped}) Tj T*\n");
    }
    text += "ET\n";
    let title: String = format!("Công văn số {NUMBER}/{NOTATION}")
        .encode_utf16()
        .map(|u| format!("{u:04X}"))
        .collect();
    let objects = [
        "<< /Type /Catalog /Pages 2 0 R >>".to_string(),
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>".into(),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>"
            .into(),
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>".into(),
        format!("<< /Length {} >>\nstream\n{text}endstream", text.len()),
        format!("<< /Title <FEFF{title}> /Producer (truc demo) >>"),
    ];
    let mut pdf = b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut offsets = Vec::new();
    for (i, o) in objects.iter().enumerate() {
        offsets.push(pdf.len());
        pdf.extend_from_slice(format!("{} 0 obj\n{o}\nendobj\n", i + 1).as_bytes());
    }
    let xref = pdf.len();
    let mut tail = format!("xref\n0 {}\n0000000000 65535 f \n", objects.len() + 1);
    for o in offsets {
        tail += &format!("{o:010} 00000 n \n");
    }
    tail += &format!(
        "trailer\n<< /Size {} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n",
        objects.len() + 1
    );
    pdf.extend_from_slice(tail.as_bytes());
    pdf
}
