//! edXML in and out through the real `truc` and `trucd`: each package of
//! tests/fixtures/edxml goes `truc send --edxml` → hub → `truc inbox
//! --format edxml` and comes out with the same content field by field
//! (`truc_edxml::first_difference`), attachments byte for byte, plus one
//! TraceHeader for the hub; a status message goes `truc status --edxml` →
//! hub → the sender's `truc inbox --format edxml`. Bad packages are refused
//! before anything is sent, naming the element and what to do.

mod support;

use std::path::Path;

use serde_json::Value;
use support::edxml::{fixture, inbox_edxml, read, same_as_sent};
use support::{text, Hub, G0901, G22, H26, H29};
use truc_edxml::{first_difference, parse, Limits, MemoryAttachments};

/// G22 sends `name` with `truc send --edxml`; returns the acceptance.
fn send_edxml(hub: &Hub, name: &str) -> Value {
    hub.json(G22, &["send", "--edxml", fixture(name).to_str().unwrap()])
}

#[test]
fn packages_come_out_as_they_went_in() {
    let hub = Hub::start();

    // New, prefixed, three attachments, an XML-DSig Signature and vendor
    // extras: to H26 and H29.
    let before = truc_core::now_unix_ms();
    let v = send_edxml(&hub, "new_3_attachments_prefixed.edxml");
    assert_eq!(v["document_id"], "000.00.00.G22,2026/12/01,1234/VPCP-KSTT", "{v}");
    let got = inbox_edxml(&hub, H26);
    assert_eq!(got.len(), 1);
    same_as_sent(&hub, &got[0], &fixture("new_3_attachments_prefixed.edxml"), before);
    let got = inbox_edxml(&hub, H29);
    same_as_sent(&hub, &got[0], &fixture("new_3_attachments_prefixed.edxml"), before);
    // Sending it again is the same document: answered as a duplicate.
    let again = send_edxml(&hub, "new_3_attachments_prefixed.edxml");
    assert_eq!(again["duplicate"], true, "{again}");

    // Unprefixed, empty elements, dd/MM/yyyy dates, an impossible date in
    // ResponseFor, an earlier hop: to G09.01.
    let before = truc_core::now_unix_ms();
    send_edxml(&hub, "new_unprefixed_empty_elements.edxml");
    let got = inbox_edxml(&hub, G0901);
    assert_eq!(got.len(), 1);
    same_as_sent(&hub, &got[0], &fixture("new_unprefixed_empty_elements.edxml"), before);

    // An update of 1234 under its own id with its ReceiverList: G09.01 is
    // added (it gets the original and the update), H29 removed.
    let before = truc_core::now_unix_ms();
    let v = send_edxml(&hub, "update_receiver_list.edxml");
    assert_eq!(v["duplicate"], false, "{v}");
    let got = inbox_edxml(&hub, H26);
    assert_eq!(got.len(), 1, "H26 gets the update notice");
    same_as_sent(&hub, &got[0], &fixture("update_receiver_list.edxml"), before);
    let to_g0901 = inbox_edxml(&hub, G0901);
    assert_eq!(to_g0901.len(), 2, "G09.01 gets the original and the update");
    let to_h29 = inbox_edxml(&hub, H29);
    assert_eq!(to_h29.len(), 1, "H29, removed, had the original: it is told");
    same_as_sent(&hub, &to_h29[0], &fixture("update_receiver_list.edxml"), before);

    // A replacement of 1234 (for H26) and 1250 (for H29), each for its
    // agency: 1250 goes to H29 first, sent from the command line.
    let plain = hub.path("1250.txt");
    std::fs::write(&plain, "Công văn 1250").unwrap();
    hub.ok(&hub.as_who(
        G22,
        &[
            "send",
            "--to",
            H29,
            "--id",
            "000.00.00.G22,2026/12/02,1250/VPCP-KSTT",
            &plain,
        ],
    ));
    // A document sent without edXML comes out as a package too.
    let h29 = inbox_edxml(&hub, H29);
    assert_eq!(h29.len(), 1, "{h29:?}");
    let (plain_pkg, files) = read(&h29[0]);
    let m = plain_pkg.document().unwrap();
    assert_eq!(m.document_id, "000.00.00.G22,2026/12/02,1250/VPCP-KSTT");
    assert_eq!(plain_pkg.attachments[0].name.as_deref(), Some("1250.txt"));
    assert_eq!(files.0, vec!["Công văn 1250".as_bytes().to_vec()]);
    let before = truc_core::now_unix_ms();
    send_edxml(&hub, "replace_replacement_info_list.edxml");
    for who in [H26, H29] {
        let got = inbox_edxml(&hub, who);
        assert_eq!(got.len(), 1, "{who}");
        same_as_sent(&hub, &got[0], &fixture("replace_replacement_info_list.edxml"), before);
    }
}

#[test]
fn statuses_both_ways_as_edxml() {
    let hub = Hub::start();
    send_edxml(&hub, "new_3_attachments_prefixed.edxml");
    // H26 receives (and reports 01 on acknowledging), then 03 from edXML.
    assert_eq!(inbox_edxml(&hub, H26).len(), 1);
    let status = fixture("status_03_registered.edxml");
    let r = hub.json(H26, &["status", "--edxml", status.to_str().unwrap()]);
    assert_eq!(r["code"], "03", "{r}");

    // G22 receives both notices as edXML status messages.
    let dir = hub.path("inbox-g22");
    hub.ok(&hub.as_who(G22, &["inbox", "--format", "edxml", "--out", &dir]));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("-status-"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[0].contains("-status-01-"), "{names:?}");
    let (sent, _) = read(&status);
    let (mut got, _) = read(&Path::new(&dir).join(&names[1]));
    let s = got.status().unwrap();
    // The time is the hub's, when it recorded the report; the name is the
    // hub's directory's. Everything else is what H26 sent.
    assert!(s.timestamp.as_ref().and_then(|t| t.datetime()).is_some());
    if let truc_edxml::Message::Status(s) = &mut got.message {
        s.timestamp = sent.status().unwrap().timestamp.clone();
        s.from.organ_name = sent.status().unwrap().from.organ_name.clone();
    }
    if let Some(d) = first_difference(&sent, &got) {
        panic!("the status came back different: {d}");
    }

    // A status from another agency than the identity is refused.
    let other = hub.truc(&hub.as_who(H29, &["status", "--edxml", status.to_str().unwrap()]));
    assert_eq!(other.status.code(), Some(4), "{}", text(&other));
    assert!(text(&other).contains("From/OrganId"), "{}", text(&other));
}

#[test]
fn bad_packages_are_refused_before_anything_is_sent() {
    let hub = Hub::start();
    let good = std::fs::read_to_string(fixture("new_3_attachments_prefixed.edxml")).unwrap();
    let write = |name: &str, text: String| {
        let p = hub.path(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    // Malformed: a closing tag that does not match, on line 5.
    let mut lines: Vec<&str> = good.lines().collect();
    assert!(lines[4].contains("<edXML:MessageHeader>"));
    lines[4] = "      <edXML:MessageHeader></edXML:Oops>";
    let malformed = write("malformed.edxml", lines.join("\n"));
    let wrong_ns = write(
        "namespace.edxml",
        good.replace("http://www.mic.gov.vn/TBT/QCVN_102_2016", "http://example.com/not-qcvn"),
    );
    let unknown_to = write(
        "unknown-to.edxml",
        good.replacen("000.00.00.H29", "000.00.00.H30", 1).replacen(
            "000.00.00.H26</edXML:OrganId>",
            "000.00.00.H31</edXML:OrganId>",
            1,
        ),
    );
    let at = good.find("<ContentTransferEncoded>").unwrap() + "<ContentTransferEncoded>".len() + 8;
    let bad_base64 = write("base64.edxml", format!("{}*{}", &good[..at], &good[at + 1..]));
    let no_id = write(
        "no-id.edxml",
        good.lines()
            .filter(|l| !l.contains("<edXML:DocumentId>000.00.00.G22,"))
            .collect::<Vec<_>>()
            .join("\n"),
    );
    let good_path = fixture("new_3_attachments_prefixed.edxml")
        .to_str()
        .unwrap()
        .to_string();
    let cases: Vec<(&str, &str, i32, Vec<&str>)> = vec![
        (
            G22,
            &malformed,
            2,
            vec!["not well-formed", "line 5", "nothing was sent"],
        ),
        (
            G22,
            &wrong_ns,
            2,
            vec!["namespace \"http://example.com/not-qcvn\" is not", "nothing was sent"],
        ),
        (
            H26,
            &good_path,
            4,
            vec!["From/OrganId", "is not the sending agency 000.00.00.H26"],
        ),
        (
            G22,
            &unknown_to,
            3,
            vec![
                "not registered at the hub: 000.00.00.H31, 000.00.00.H30",
                "truc ops agencies add",
            ],
        ),
        (
            G22,
            &bad_base64,
            2,
            vec!["Attachment[1]/ContentTransferEncoded", "base64"],
        ),
        (G22, &no_id, 2, vec!["MessageHeader/DocumentId", "required"]),
    ];
    for (who, package, code, wants) in &cases {
        let o = hub.truc(&hub.as_who(who, &["send", "--edxml", package]));
        let t = text(&o);
        assert_eq!(o.status.code(), Some(*code), "{package}: {t}");
        for w in wants {
            assert!(t.contains(w), "{package}: {w:?} not in {t}");
        }
    }
    // Nothing reached anyone.
    for who in [H26, H29] {
        assert!(inbox_edxml(&hub, who).is_empty(), "{who} received something");
    }
    let track = hub.truc(&hub.as_who(G22, &["track", "000.00.00.G22,2026/12/01,1234/VPCP-KSTT"]));
    assert_eq!(
        track.status.code(),
        Some(3),
        "the hub knows no such document: {}",
        text(&track)
    );
}

/// A package with a 48 MiB attachment (64 MiB of base64) goes through
/// `truc send --edxml` and `truc inbox --format edxml` within the bounds of
/// sending and receiving 48 MiB as a plain file (the chunked
/// transfer's: a few 4 MiB chunks and the HTTP/2 windows), so neither holds
/// the attachment or its base64. (Measured with 16, 48 and 96 MiB: the
/// peak stops growing at about 75 MiB.)
#[test]
fn a_large_package_streams_through_in_bounded_memory() {
    const ATTACHMENT: usize = 48 << 20;
    let hub = Hub::start();
    let small = fixture("new_unprefixed_empty_elements.edxml");
    // The fixture as another document, with a large attachment, written by
    // truc-edxml (base64 encoded as it goes).
    let (mut p, _) = read(&small);
    if let truc_edxml::Message::Document(m) = &mut p.message {
        m.document_id = m.document_id.replace("88/", "89/");
        m.code.as_mut().unwrap().number = Some("89".into());
    }
    let bytes: Vec<u8> = (0..ATTACHMENT as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let sha = truc_core::sha256(&bytes);
    // As many other bytes (the hub stores a payload once: the same bytes
    // would not travel twice).
    let plain = hub.path("plain.bin");
    std::fs::write(&plain, bytes.iter().map(|b| b ^ 0x5a).collect::<Vec<u8>>()).unwrap();
    let large = hub.path("large.edxml");
    let out = std::io::BufWriter::new(std::fs::File::create(&large).unwrap());
    truc_edxml::write(&p, out, &mut MemoryAttachments(vec![bytes])).unwrap();

    let measured = |who: &str, args: &[&str]| {
        let (o, kib) = support::run_measured(support::truc_command(hub.tmp.path(), &hub.as_who(who, args)));
        assert!(o.status.success(), "{args:?}: {}", support::text(&o));
        (o, kib)
    };
    let (_, send_plain) = measured(G22, &["send", "--to", G0901, "--id", "000.00.00.G22,1/plain", &plain]);
    let (_, inbox_plain) = measured(G0901, &["inbox", "--out", &hub.path("plain")]);
    let (_, send_large) = measured(G22, &["send", "--edxml", &large]);
    let dir = hub.path("large-in");
    let (_, inbox_large) = measured(G0901, &["inbox", "--format", "edxml", "--out", &dir]);
    let got = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "edxml"))
        .unwrap();
    let p = parse(
        std::io::BufReader::new(std::fs::File::open(&got).unwrap()),
        Limits::new(1 << 30),
        &mut truc_edxml::Discard,
    )
    .unwrap();
    assert_eq!(p.attachments[0].size, ATTACHMENT as u64);
    assert_eq!(p.attachments[0].sha256, sha, "the attachment byte for byte");
    let mib = |kib: u64| kib as f64 / 1024.0;
    let report = format!(
        "peak resident set, MiB: truc send --edxml {:.1} (48 MiB as a plain file: {:.1}); truc inbox \
         --format edxml {:.1} (as files: {:.1}); attachment {} MiB, package {} MiB",
        mib(send_large),
        mib(send_plain),
        mib(inbox_large),
        mib(inbox_plain),
        ATTACHMENT >> 20,
        std::fs::metadata(&large).unwrap().len() >> 20
    );
    eprintln!("{report}");
    // Parsing and writing edXML add their buffers (1 MiB reads and writes)
    // and the runs vary by a few MiB; holding the attachment would add 48.
    assert!(send_large < send_plain + 20 * 1024, "{report}");
    assert!(inbox_large < inbox_plain + 20 * 1024, "{report}");
}
