//! Issue 15's refusals of bad edXML packages, end to end: `truc send
//! --edxml` against a real `trucd` refuses each before anything is sent,
//! naming the element and the reason, and the hub stores nothing (its
//! receipt log does not grow, no payload or upload is kept, no document is
//! known, no inbox gets anything). Each package is the suite's new
//! document (tests/fixtures/edxml/suite/doc_0_new_prefixed.edxml) with one
//! fault: bytes before the XML declaration, an unbound prefix, From, To or
//! DocumentId missing, another agency's DocumentId, a manifest Reference
//! with no attachment, an XML bomb (billion laughs: with its DTD, and the
//! entity alone), external entities (a file, a DTD from the network: no
//! connection is made), attachments over the hub's document size. The XML
//! bomb is refused within the memory of any refusal. (truc-edxml's own
//! tests, crates/edxml/tests/refusals.rs, check the parser's part of each;
//! crates/truc/tests/edxml.rs the CLI's refusal of malformed XML, another
//! namespace, From not the caller, an unknown To, bad base64. The 2 GiB
//! base64 attachment is crates/truc/tests/edxml_large.rs.)

mod support;

use std::net::TcpListener;

use support::edxml::{fixture, inbox_edxml};
use support::{run_measured, text, truc_command, Hub, Setup, G22, H26, H29};

/// The hub's largest document in this test: 1 MiB.
const MAX_DOCUMENT: u64 = 1 << 20;

const A: &str = "000.00.00.G22,2026/12/07,2045/VPCP-HC";
const HEADER: &str = "edXML/edXMLEnvelope/edXMLHeader/MessageHeader";

/// `text` with `from` (which must be there) replaced by `to`, once.
fn with(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "{from}");
    text.replacen(from, to, 1)
}

/// `text` without the element that starts at `open` (up to its `close`).
fn without(text: &str, open: &str, close: &str) -> String {
    let at = text.find(open).unwrap_or_else(|| panic!("{open}"));
    let end = at + text[at..].find(close).unwrap() + close.len();
    format!("{}{}", &text[..at], &text[end..])
}

/// The receipt log's size: it grows with every document accepted.
fn tree_size(hub: &Hub) -> u64 {
    hub.json("ops", &["ops", "status"])["tree_size"].as_u64().unwrap()
}

#[test]
fn bad_packages_are_refused_naming_the_element_and_nothing_is_stored() {
    let hub = Hub::start_with(Setup {
        env: &[("TRUC_LIMITS_MAX_DOCUMENT_SIZE", "1048576")],
        ..Setup::default()
    });
    let good = std::fs::read_to_string(fixture("suite/doc_0_new_prefixed.edxml")).unwrap();
    let decl = r#"<?xml version="1.0" encoding="UTF-8"?>"#;
    let subject = "V/v triển khai số hoá hồ sơ lưu trữ và kết nối Trục liên thông văn bản quốc gia năm 2027";

    // Billion laughs: 10 entities of 10 references each, 10^9 "lol"s.
    let mut dtd = String::from("<!DOCTYPE edXML [\n  <!ENTITY lol0 \"lol\">\n");
    for i in 1..=9 {
        dtd += &format!("  <!ENTITY lol{i} \"{}\">\n", format!("&lol{};", i - 1).repeat(10));
    }
    dtd += "]>";
    let bomb = with(&with(&good, decl, &format!("{decl}\n{dtd}")), subject, "&lol9;");
    // External entities: a local file with a secret, a DTD on a port that
    // would see a connection.
    let secret = hub.path("secret.txt");
    std::fs::write(&secret, "BÍ MẬT: mật khẩu văn thư 7f3a9c").unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let xxe_file = with(
        &with(
            &good,
            decl,
            &format!("{decl}\n<!DOCTYPE edXML [ <!ENTITY xxe SYSTEM \"file://{secret}\"> ]>"),
        ),
        subject,
        "&xxe;",
    );
    let xxe_dtd = with(
        &good,
        decl,
        &format!("{decl}\n<!DOCTYPE edXML SYSTEM \"http://127.0.0.1:{port}/edxml.dtd\">"),
    );
    // 1.5 MiB of annex ("ABC" again and again: 2 MiB of base64) in place
    // of the spreadsheet, the last attachment.
    let at = good.rfind("<ContentTransferEncoded>").unwrap() + "<ContentTransferEncoded>".len();
    let end = at + good[at..].find("</ContentTransferEncoded>").unwrap();
    let over = format!("{}{}{}", &good[..at], "QUJD".repeat(1 << 19), &good[end..]);

    // What each refusal says, beyond its element.
    let no_from = format!("{HEADER}/From: required element missing");
    let no_to = format!("{HEADER}/To: required element missing");
    let no_id = format!("{HEADER}/DocumentId: required element missing");
    let other_id = format!("{HEADER}/DocumentId \"000.00.00.H26,2026/12/07,2045/VPCP-HC\"");
    let entity = format!("{HEADER}/Subject: entity reference &lol9; refused");
    let our_id = format!("<edXML:DocumentId>{A}");
    let cases: Vec<(&str, String, i32, Vec<&str>)> = vec![
        (
            "before-declaration",
            format!("ï»¿{good}"),
            2,
            vec![
                "(prolog): not well-formed XML: content before the XML declaration",
                "ï»¿",
            ],
        ),
        (
            "unbound-prefix",
            with(
                &good,
                r#"<edXML:Reference xmlns:xlink="http://www.w3.org/1999/xlink" xlink:href="cid:pl-1">"#,
                r#"<edXML:Reference xlink:href="cid:pl-1">"#,
            ),
            2,
            vec![
                "edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference: not well-formed XML",
                "prefix \"xlink\" is not bound to a namespace",
            ],
        ),
        (
            "no-from",
            without(&good, "<edXML:From>", "</edXML:From>"),
            2,
            vec![&no_from],
        ),
        (
            "no-to",
            without(
                &without(&good, "<edXML:To>", "</edXML:To>"),
                "<edXML:To>",
                "</edXML:To>",
            ),
            2,
            vec![&no_to],
        ),
        (
            "no-document-id",
            without(&good, "<edXML:DocumentId>", "</edXML:DocumentId>"),
            2,
            vec![&no_id],
        ),
        (
            "another-agencys-id",
            with(
                &good,
                &our_id,
                "<edXML:DocumentId>000.00.00.H26,2026/12/07,2045/VPCP-HC",
            ),
            2,
            vec![&other_id, "must start with the sender's code \"000.00.00.G22,\""],
        ),
        (
            "reference-without-attachment",
            with(
                &good,
                "<ContentId>cid:pl-2</ContentId>",
                "<ContentId>cid:pl-3</ContentId>",
            ),
            2,
            vec![
                "edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference[3]",
                "content id \"cid:pl-2\" has no attachment in AttachmentEncoded",
            ],
        ),
        (
            "billion-laughs",
            bomb,
            2,
            vec!["(prolog): DOCTYPE refused", "entity expansion"],
        ),
        ("entity-without-dtd", with(&good, subject, "&lol9;"), 2, vec![&entity]),
        (
            "xxe-file",
            xxe_file,
            2,
            vec!["(prolog): DOCTYPE refused", "external entities"],
        ),
        ("xxe-dtd", xxe_dtd, 2, vec!["(prolog): DOCTYPE refused"]),
        (
            "over-the-document-size",
            over,
            4,
            vec![
                "edXML/AttachmentEncoded/Attachment[3]/ContentTransferEncoded",
                "more than 1048576 bytes, the most the hub accepts in one document",
            ],
        ),
    ];

    let before = tree_size(&hub);
    let mut peaks = Vec::new();
    for (name, xml, code, wants) in &cases {
        let path = hub.path(&format!("{name}.edxml"));
        std::fs::write(&path, xml).unwrap();
        let (o, kib) = run_measured(truc_command(
            hub.tmp.path(),
            &hub.as_who(G22, &["send", "--edxml", &path]),
        ));
        let t = text(&o);
        assert_eq!(o.status.code(), Some(*code), "{name}: {t}");
        for w in wants.iter().chain(&["refused", "nothing was sent"]) {
            assert!(t.contains(w), "{name}: {w:?} not in {t}");
        }
        assert!(!t.contains("7f3a9c"), "{name}: the secret file was read: {t}");
        peaks.push((*name, kib));
        if *name == "over-the-document-size" {
            // Reading stopped once the limit was passed, halfway through
            // the 2 MiB line of base64.
            let column: u64 = t
                .split("column ")
                .nth(1)
                .unwrap()
                .split(')')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            assert!(column < 3 << 19, "{t}");
        }
    }
    // No connection was made for the external DTD.
    assert_eq!(
        listener.accept().err().map(|e| e.kind()),
        Some(std::io::ErrorKind::WouldBlock),
        "truc fetched the external DTD"
    );
    // The bomb costs no more memory than refusing bytes before the
    // declaration (its expansion would be 3 GB).
    let peak = |n: &str| peaks.iter().find(|(name, _)| *name == n).unwrap().1;
    eprintln!("peak resident set, KiB: {peaks:?}");
    assert!(
        peak("billion-laughs") < peak("before-declaration") + 8 * 1024,
        "{peaks:?}"
    );

    // Nothing was stored: no receipt, no payload or upload, no document,
    // nothing delivered.
    assert_eq!(tree_size(&hub), before, "the receipt log grew");
    let storage = hub.json("ops", &["ops", "storage"]);
    assert_eq!(
        (&storage["payloads"], &storage["uploads_incomplete"]),
        (&0.into(), &0.into()),
        "{storage}"
    );
    let track = hub.truc(&hub.as_who(G22, &["track", A]));
    assert_eq!(track.status.code(), Some(3), "{}", text(&track));
    for who in [H26, H29] {
        assert!(inbox_edxml(&hub, who).is_empty(), "{who} received something");
    }

    // The hub holds its document size inline too: the same annex sent as a
    // plain file is refused by the hub itself.
    let plain = hub.path("phu-luc.bin");
    std::fs::write(&plain, vec![7u8; (MAX_DOCUMENT + 1) as usize]).unwrap();
    let o = hub.truc(&hub.as_who(
        G22,
        &["send", "--to", H26, "--number", "2046", "--notation", "VPCP-HC", &plain],
    ));
    assert_eq!(o.status.code(), Some(4), "{}", text(&o));
    assert!(
        text(&o).contains("this hub accepts at most 1048576 bytes per document"),
        "{}",
        text(&o)
    );
    assert_eq!(tree_size(&hub), before, "the receipt log grew");
}
