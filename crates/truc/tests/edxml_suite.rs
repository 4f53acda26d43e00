//! The edXML round-trip suite of issue 15 ("How it is checked"), through
//! the real `truc` and `trucd`: packages written for it
//! (tests/fixtures/edxml/suite, modelled on what agency systems send,
//! Vietnamese throughout) go `truc send --edxml` → hub → `truc inbox
//! --format edxml` and compare equal field by field
//! (`truc_edxml::first_difference`), attachments byte for byte, once the
//! hub's TraceHeader is set aside:
//! - one package per business type: 0 new (prefixed `edXML:`, three
//!   attachments, vendor elements in MessageHeader and OtherInfo, an
//!   XML-DSig Signature; and unprefixed, with empty elements), 1 revoke
//!   under the original's DocumentId as the axis sends it (no attachment, a
//!   vendor element in Bussiness), 2 update with its ReceiverList, 3
//!   replacement of two documents each for its agencies (every element
//!   prefixed `ns2:`, as JAXB writes it, an impossible date in ResponseFor);
//! - one status message per status code, 01 02 03 04 05 06 13 15 16, sent
//!   with `truc status --edxml` in an order the status rules allow and
//!   received as an edXML status message, the same but for what the hub
//!   does not keep (`support::edxml::status_difference`).
//!
//! Each comparison is shown to fail on a change: a diacritic in a name, an
//! attachment byte, a status's Description.

mod support;

use std::path::{Path, PathBuf};

use serde_json::Value;
use support::edxml::{difference_after, fixture, read, receive_edxml, same_as_sent, status_difference};
use support::{text, Hub, Setup, G0901, G22, H26, H29};
use truc_edxml::{BusinessDocType, Message, Package};

/// The directory's names, as the packages write them in From and To.
const NAMES: &[(&str, &str)] = &[
    (G22, "Văn phòng Chính phủ"),
    (H26, "UBND Thành phố Hà Nội"),
    (H29, "UBND Thành phố Hồ Chí Minh"),
    (G0901, "Vụ Tổ chức cán bộ, Bộ Nội vụ"),
];

const A: &str = "000.00.00.G22,2026/12/07,2045/VPCP-HC";
const B: &str = "000.00.00.G22,2026/12/08,2101/VPCP-KSTT";
const C: &str = "000.00.00.G22,2026/12/09,2150/VPCP-KSTT";

fn suite(name: &str) -> PathBuf {
    fixture(&format!("suite/{name}"))
}

/// `who` sends suite package `name` with `truc send --edxml`: the acceptance.
fn send(hub: &Hub, who: &str, name: &str) -> Value {
    hub.json(who, &["send", "--edxml", suite(name).to_str().unwrap()])
}

/// G22 sends suite package `name`: accepted, as a new action, under `id`.
fn accepted_as(hub: &Hub, name: &str, id: &str) -> Value {
    let v = send(hub, G22, name);
    assert_eq!(
        (v["document_id"].as_str(), &v["duplicate"]),
        (Some(id), &Value::Bool(false)),
        "{name}: {v}"
    );
    v
}

/// The business type of a received package.
fn business(path: &Path) -> Option<BusinessDocType> {
    let (p, _) = read(path);
    p.trace.and_then(|t| t.business).and_then(|b| b.doc_type)
}

/// The one package `who` receives now, the same as suite package `name`.
fn receives(hub: &Hub, who: &str, name: &str, before: i64) -> PathBuf {
    let got = receive_edxml(hub, who, &[]).documents;
    assert_eq!(got.len(), 1, "{who} receives {name} alone: {got:?}");
    same_as_sent(hub, &got[0], &suite(name), before);
    got[0].clone()
}

fn document_mut(p: &mut Package) -> &mut truc_edxml::MessageHeader {
    match &mut p.message {
        Message::Document(h) => h,
        Message::Status(_) => panic!("a status message"),
    }
}

#[test]
fn every_business_type_round_trips() {
    let hub = Hub::start_with(Setup {
        names: NAMES,
        ..Setup::default()
    });

    // 0, new, prefixed: to H26 and H29.
    let before = truc_core::now_unix_ms();
    let v = accepted_as(&hub, "doc_0_new_prefixed.edxml", A);
    assert_eq!(v["warnings"], serde_json::json!([]), "{v}");
    let at_h26 = receives(&hub, H26, "doc_0_new_prefixed.edxml", before);
    receives(&hub, H29, "doc_0_new_prefixed.edxml", before);
    // The comparison finds a change: a diacritic in the signer's name, one
    // attachment byte (its SHA-256), a vendor element's text.
    let sent = suite("doc_0_new_prefixed.edxml");
    let d = difference_after(&hub, &at_h26, &sent, before, |q| {
        let s = document_mut(q).signer.as_mut().unwrap();
        s.full_name = Some("Nguyễn Sĩ Hiệp".into());
    })
    .expect("a changed FullName is a difference");
    assert!(d.element.ends_with("SignerInfo[1]/FullName[1]"), "{d}");
    let d = difference_after(&hub, &at_h26, &sent, before, |q| q.attachments[1].sha256[0] ^= 1)
        .expect("a changed attachment is a difference");
    assert!(d.element.contains("AttachmentEncoded[1]/Attachment[2]"), "{d}");
    let d = difference_after(&hub, &at_h26, &sent, before, |q| {
        let x = &mut document_mut(q).extras.0[1].xml;
        *x = x.replace("QLVB-ĐH 4.0", "QLVB-DH 4.0");
    })
    .expect("a changed vendor element is a difference");
    assert!(d.element.ends_with("ApplicationType[1]"), "{d}");

    // 1, revoke, unprefixed, no attachment: under A's own DocumentId, as
    // the axis sends it; both recipients had A and are told.
    let before = truc_core::now_unix_ms();
    let revoke = accepted_as(&hub, "doc_1_revoke_default.edxml", A);
    for who in [H26, H29] {
        let got = receives(&hub, who, "doc_1_revoke_default.edxml", before);
        assert_eq!(business(&got), Some(BusinessDocType::Revoke));
    }
    // The same revoke again is a duplicate of it, not a new action.
    let again = send(&hub, G22, "doc_1_revoke_default.edxml");
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["hub_document_id"], revoke["hub_document_id"]);

    // 0, new, unprefixed with empty elements: B, to H26 and H29.
    let before_b = truc_core::now_unix_ms();
    send(&hub, G22, "doc_0_new_default.edxml");
    for who in [H26, H29] {
        receives(&hub, who, "doc_0_new_default.edxml", before_b);
    }

    // 2, update of B under B's id: G09.01 added (it gets B and the update),
    // H29 removed (it had B: it is told), H26 stays.
    let before = truc_core::now_unix_ms();
    accepted_as(&hub, "doc_2_update_prefixed.edxml", B);
    receives(&hub, H26, "doc_2_update_prefixed.edxml", before);
    receives(&hub, H29, "doc_2_update_prefixed.edxml", before);
    let got = receive_edxml(&hub, G0901, &[]).documents;
    assert_eq!(got.len(), 2, "G09.01 gets B and its update: {got:?}");
    for path in &got {
        match business(path) {
            Some(BusinessDocType::New) => same_as_sent(&hub, path, &suite("doc_0_new_default.edxml"), before_b),
            Some(BusinessDocType::Update) => same_as_sent(&hub, path, &suite("doc_2_update_prefixed.edxml"), before),
            other => panic!("{}: {other:?}", path.display()),
        }
    }

    // 3, replacement C of B (for H26 and G09.01) and of 2102 (for G09.01),
    // which G09.01 has from the command line first.
    let plain = hub.path("2102.pdf");
    std::fs::write(&plain, b"%PDF-1.4\n% C\xc3\xb4ng v\xc4\x83n 2102/VPCP-KSTT\n%%EOF\n").unwrap();
    hub.ok(&hub.as_who(
        G22,
        &[
            "send",
            "--to",
            G0901,
            "--number",
            "2102",
            "--notation",
            "VPCP-KSTT",
            "--promulgated",
            "2026/12/08",
            "--subject",
            "V/v đăng ký dịch vụ công trực tuyến của Bộ Nội vụ",
            &plain,
        ],
    ));
    assert_eq!(receive_edxml(&hub, G0901, &[]).documents.len(), 1);
    let before = truc_core::now_unix_ms();
    accepted_as(&hub, "doc_3_replace_ns2.edxml", C);
    for who in [H26, G0901] {
        let got = receives(&hub, who, "doc_3_replace_ns2.edxml", before);
        assert_eq!(business(&got), Some(BusinessDocType::Replace));
    }
    // Nothing else arrived anywhere.
    for who in [H26, H29, G0901] {
        let left = receive_edxml(&hub, who, &[]);
        assert!(left.documents.is_empty(), "{who}: {left:?}");
    }
    // The hub linked each correction to its original.
    let kinds = |id: &str| -> Vec<String> {
        let v = hub.json(G22, &["track", id]);
        v["corrections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["kind"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(kinds(A), ["revoke"]);
    assert_eq!(kinds(B), ["update", "replace"]);
}

/// The status messages of the suite, in an order the rules allow: who
/// reports which. H29's 01 is the one `truc inbox` reports on
/// acknowledging.
const STATUSES: [(&str, &str); 9] = [
    (H26, "01"),
    (H29, "02"),
    (H26, "03"),
    (H26, "04"),
    (H26, "05"),
    (H26, "06"),
    (G22, "13"),
    (H26, "15"),
    (H29, "16"),
];

#[test]
fn every_status_code_comes_back_as_edxml() {
    let hub = Hub::start_with(Setup {
        names: NAMES,
        ..Setup::default()
    });
    send(&hub, G22, "doc_0_new_prefixed.edxml");
    // H26 reports its 01 itself, from edXML; H29's inbox reports it.
    assert_eq!(receive_edxml(&hub, H26, &["--no-arrived"]).documents.len(), 1);
    assert_eq!(receive_edxml(&hub, H29, &[]).documents.len(), 1);

    let mut windows = Vec::new();
    for (who, code) in STATUSES {
        let before = truc_core::now_unix_ms();
        let file = suite(&format!("status_{code}.edxml"));
        let o = hub.ok(&hub.as_who(who, &["status", "--edxml", file.to_str().unwrap(), "--json"]));
        let r: Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(
            (r["code"].as_str(), r["document_id"].as_str()),
            (Some(code), Some(A)),
            "{r}"
        );
        // What the hub does not keep is said, not dropped silently.
        let said = String::from_utf8_lossy(&o.stderr);
        assert!(
            said.contains("Timestamp") && said.contains("not carried"),
            "{code}: {said}"
        );
        assert!(
            !said.contains("ResponseFor") && !said.contains("OrganName"),
            "{code}: {said}"
        );
        windows.push((before, truc_core::now_unix_ms()));
    }
    // The rules still hold for statuses from edXML: 03 after 06 is refused.
    let late = hub.truc(&hub.as_who(H26, &["status", "--edxml", suite("status_03.edxml").to_str().unwrap()]));
    assert_eq!(late.status.code(), Some(4), "{}", text(&late));
    assert!(text(&late).contains("has finished it (06)"), "{}", text(&late));

    // The sender receives every recipient's status, the recipients the 13.
    let mut received = receive_edxml(&hub, G22, &[]).statuses;
    for who in [H26, H29] {
        let got = receive_edxml(&hub, who, &[]);
        assert!(got.documents.is_empty(), "{who}: {got:?}");
        received.extend(got.statuses);
    }
    let mut codes: Vec<(String, String)> = received.iter().map(|(c, r, _)| (c.clone(), r.clone())).collect();
    codes.sort();
    let mut expected: Vec<(String, String)> = STATUSES
        .iter()
        .flat_map(|&(who, code)| {
            // The 13 goes to both recipients.
            let n = if code == "13" { 2 } else { 1 };
            std::iter::repeat_n((code.to_string(), who.to_string()), n)
        })
        .chain([("01".to_string(), H29.to_string())])
        .collect();
    expected.sort();
    assert_eq!(codes, expected);

    for ((who, code), window) in STATUSES.iter().zip(windows) {
        let sent = suite(&format!("status_{code}.edxml"));
        let got: Vec<&PathBuf> = received
            .iter()
            .filter(|(c, r, _)| c == code && r == who)
            .map(|(_, _, p)| p)
            .collect();
        for path in got {
            if let Some(d) = status_difference(path, &sent, window, |_| {}) {
                panic!("{}: differs from {}: {d}", path.display(), sent.display());
            }
            // And a change is found.
            let d = status_difference(path, &sent, window, |q| {
                if let Message::Status(s) = &mut q.message {
                    s.description = s.description.as_ref().map(|t| format!("{t} (sửa)"));
                }
            });
            let d = d.unwrap_or_else(|| panic!("{code}: a changed Description is no difference"));
            assert!(d.element.ends_with("Description[1]"), "{d}");
        }
    }
}
