//! edXML packages through Truc's signed header and back, without a hub:
//! every fixture in tests/fixtures/edxml is imported (typed fields plus its
//! EdxmlForm), the header is serialized and decoded as a receiver gets it,
//! exported with the hub's hop, written, read again, and compared field by
//! field with the original (`truc_edxml::first_difference`) once the hub's
//! hop is set aside. The hub path (`truc send --edxml` → `truc inbox
//! --format edxml`) is crates/truc/tests/edxml.rs.

use std::path::PathBuf;

use prost::Message;
use truc_client::edxml::{export, import, status_not_carried, status_package, status_request, Hop};
use truc_client::proto::{DocumentHeader, StatusNotice};
use truc_client::transfer::{manifest, Digests};
use truc_edxml::{first_difference, parse, write, EdDateTime, Limits, MemoryAttachments, Package};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/edxml")
}

fn read(name: &str) -> (Package, MemoryAttachments) {
    let bytes = std::fs::read(fixtures().join(name)).expect("fixture");
    let mut files = MemoryAttachments::default();
    let p = parse(bytes.as_slice(), Limits::new(1 << 30), &mut files).expect("parse fixture");
    (p, files)
}

/// The header a sender would sign for `p`: imported, with the manifest of
/// its attachments' bytes.
fn signed_header(p: &Package, files: &MemoryAttachments) -> DocumentHeader {
    let imported = import(p, truc_edxml::DEFAULT_OFFSET).expect("import");
    let mut payload = Vec::new();
    let mut sizes = Vec::new();
    let mut attachments = Vec::new();
    for f in &files.0 {
        payload.extend_from_slice(f);
        sizes.push(f.len() as u64);
        attachments.push(truc_core::sha256(f));
    }
    let digests = Digests {
        sha256: truc_core::sha256(&payload),
        size: payload.len() as u64,
        attachments,
        sizes,
    };
    let mut h = imported.header;
    h.attachments = manifest(&imported.attachments, &digests);
    h.payload_sha256 = digests.sha256.to_vec();
    h.payload_size = digests.size;
    // As it travels: bytes, decoded by the receiver.
    DocumentHeader::decode(h.encode_to_vec().as_slice()).expect("decode")
}

/// `q` without its last TraceHeader (the hub's), and without an empty
/// TraceHeaderList the hop alone made.
fn without_hub_hop(mut q: Package, had_trace: bool) -> (Package, Option<truc_edxml::TraceHeader>) {
    let t = q.trace.as_mut().expect("an exported package has a TraceHeaderList");
    let hop = t.traces.pop();
    let empty = t.traces.is_empty() && t.business.is_none() && t.extras.is_empty() && t.attributes.is_empty();
    if empty && !had_trace {
        q.trace = None;
    }
    (q, hop)
}

fn round_trip(name: &str) {
    let (p, files) = read(name);
    let h = signed_header(&p, &files);
    truc_core::document::check_header(&h.encode_to_vec())
        .unwrap_or_else(|e| panic!("{name}: the hub would refuse the header: {e}"));
    let hop = Hop {
        organ_id: "axis".into(),
        timestamp: EdDateTime::parse("2026/12/01 09:00:00"),
    };
    let out = export(&h, Some(hop.clone()), truc_edxml::DEFAULT_OFFSET);
    let mut source = files.clone();
    let xml = write(&out, Vec::new(), &mut source).expect("write");
    let mut again_files = MemoryAttachments::default();
    let again = parse(xml.as_slice(), Limits::new(1 << 30), &mut again_files).expect("the export parses");
    assert_eq!(again_files, files, "{name}: attachments byte for byte");
    let (again, last) = without_hub_hop(again, p.trace.is_some());
    let last = last.expect("the hub's hop");
    assert_eq!(last.organ_id.as_deref(), Some("axis"));
    assert_eq!(last.timestamp, Some(hop.timestamp));
    if let Some(d) = first_difference(&p, &again) {
        panic!(
            "{name}: differs after the round trip: {d}\n{}",
            String::from_utf8_lossy(&xml)
        );
    }
    // The style comes back too (not content, but what the sender wrote).
    assert_eq!(again.style, p.style, "{name}");
}

/// The comparison the round trips rely on sees what the form carries: a
/// header without its record of empty elements, unmodelled elements or
/// odd date forms comes back different.
#[test]
fn what_the_form_carries_is_needed() {
    let (p, files) = read("new_unprefixed_empty_elements.edxml");
    let h = signed_header(&p, &files);
    type Case = (&'static str, fn(&mut truc_client::proto::EdxmlForm));
    let cases: [Case; 4] = [
        ("Fax", |f| f.stated.retain(|s| !s.ends_with("From/Fax"))),
        ("ApplicationType", |f| f.elements.clear()),
        ("DueDate", |f| f.written.clear()),
        ("TraceHeader", |f| f.traces.clear()),
    ];
    for (what, cut) in cases {
        let mut h = h.clone();
        cut(h.edxml.as_mut().unwrap());
        let out = export(&h, None, truc_edxml::DEFAULT_OFFSET);
        let xml = write(&out, Vec::new(), &mut files.clone()).unwrap();
        let again = parse(xml.as_slice(), Limits::new(1 << 30), &mut MemoryAttachments::default()).unwrap();
        let d = first_difference(&p, &again).unwrap_or_else(|| panic!("{what}: no difference found"));
        assert!(d.to_string().contains(what), "{what}: {d}");
    }
}

#[test]
fn three_attachments_prefixed_with_a_signature_and_vendor_extras() {
    round_trip("new_3_attachments_prefixed.edxml");
}

#[test]
fn unprefixed_with_empty_elements_and_odd_dates() {
    round_trip("new_unprefixed_empty_elements.edxml");
}

#[test]
fn an_update_with_its_receiver_list() {
    round_trip("update_receiver_list.edxml");
}

#[test]
fn a_replacement_of_two_documents() {
    round_trip("replace_replacement_info_list.edxml");
}

/// The round-trip suite's document packages (tests/fixtures/edxml/suite;
/// through a hub in crates/truc/tests/edxml_suite.rs), among them a revoke
/// with no attachment, which comes back with none.
#[test]
fn the_suite_documents_round_trip() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures().join("suite"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("doc_"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 5, "{names:?}");
    for name in names {
        round_trip(&format!("suite/{name}"));
    }
}

#[test]
fn the_typed_fields_hold_the_message_header() {
    let (p, files) = read("new_3_attachments_prefixed.edxml");
    let h = signed_header(&p, &files);
    assert_eq!(h.from, "000.00.00.G22");
    assert_eq!(h.to, ["000.00.00.H26", "000.00.00.H29"]);
    assert_eq!(h.recipients[1].organ_name, "UBND Thành phố Hồ Chí Minh");
    assert_eq!(h.sender.as_ref().unwrap().fax, "080 44130");
    assert_eq!(
        (h.code_number.as_str(), h.code_notation.as_str()),
        ("1234", "VPCP-KSTT")
    );
    assert_eq!(h.promulgation_date, "2026/12/01");
    assert_eq!((h.document_type_code, h.document_type_detail), (1, 2));
    assert_eq!(h.priority, 1);
    assert_eq!(h.other_info.as_ref().unwrap().page_amount, 4);
    assert_eq!(h.steering_type, 1);
    assert_eq!(h.response_for[0].code, "4521/UBND-KSTTHC");
    assert_eq!(h.business_staff.as_ref().unwrap().staff, "Trần Văn Bình");
    // DueDate 2026/12/15 is due by the end of that day at UTC+7.
    assert_eq!(h.due_date_unix_ms, 1_797_353_999_999);
    let names: Vec<&str> = h.attachments.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["1234-VPCP-KSTT.pdf", "Phụ lục I.docx", "so-do.png"]);
    assert_eq!(h.attachments[2].media_type, "image/png");
    assert_eq!(h.attachments[1].offset, h.attachments[0].size);
    let form = h.edxml.as_ref().unwrap();
    // The vendor extension and the XML-DSig signature travel as written.
    assert!(form.elements.iter().any(|e| e.xml.contains("ResponseForTask")));
    assert!(form.elements.iter().any(|e| e.xml.contains("<Signature")));
}

#[test]
fn a_plain_header_exports_as_a_package() {
    // A document sent without edXML (truc send --attach): typed fields only.
    let (p, files) = read("new_3_attachments_prefixed.edxml");
    let mut h = signed_header(&p, &files);
    h.edxml = None;
    let out = export(&h, None, truc_edxml::DEFAULT_OFFSET);
    let m = out.document().unwrap();
    assert_eq!(m.to.len(), 2);
    assert_eq!(
        m.due_date.as_ref().map(ToString::to_string).as_deref(),
        Some("2026/12/15")
    );
    assert_eq!(out.manifest.as_ref().unwrap().references.len(), 3);
    assert_eq!(out.attachments[1].name.as_deref(), Some("Phụ lục I.docx"));
    let xml = write(&out, Vec::new(), &mut files.clone()).unwrap();
    parse(xml.as_slice(), Limits::new(1 << 30), &mut MemoryAttachments::default()).expect("well-formed");
}

#[test]
fn a_status_message_both_ways() {
    let (p, _) = read("status_03_registered.edxml");
    let req = status_request(&p, "000.00.00.H26").unwrap();
    assert_eq!(req.document_from, "000.00.00.G22");
    assert_eq!(req.document_id, "000.00.00.G22,2026/12/01,1234/VPCP-KSTT");
    assert_eq!(req.code, 3);
    assert_eq!(req.staff.as_ref().unwrap().staff_id, "VT-07");
    let e = status_request(&p, "000.00.00.H29").unwrap_err();
    assert!(e.element.ends_with("MessageHeader/From/OrganId"), "{e}");

    // The notice the sender receives, as the hub states it.
    let notice = StatusNotice {
        document_from: req.document_from.clone(),
        document_id: req.document_id.clone(),
        reporter: "000.00.00.H26".into(),
        code: req.code,
        description: req.description.clone(),
        staff: req.staff.clone(),
        time_unix_ms: 1_796_108_700_000, // 2026-12-01 14:05:00 +07:00
        ..Default::default()
    };
    let out = status_package(&notice, "UBND Thành phố Hà Nội", truc_edxml::DEFAULT_OFFSET).unwrap();
    let xml = write(&out, Vec::new(), &mut MemoryAttachments::default()).unwrap();
    let again = parse(xml.as_slice(), Limits::new(1 << 20), &mut MemoryAttachments::default()).unwrap();
    // Everything the sender's status said, the hub's time included here.
    if let Some(d) = first_difference(&p, &again) {
        panic!("status differs: {d}\n{}", String::from_utf8_lossy(&xml));
    }
}

/// What the hub does not keep of a status message is named, and nothing
/// else: the Timestamp, From's details, a ResponseFor that says other than
/// its DocumentId, vendor elements.
#[test]
fn what_a_status_message_loses_is_named() {
    let (p, _) = read("status_03_registered.edxml");
    let req = status_request(&p, "000.00.00.H26").unwrap();
    let named = |p: &Package, dir: Option<&str>| -> Vec<String> {
        status_not_carried(p, &req, dir)
            .into_iter()
            .map(|w| w.element.rsplit("MessageHeader/").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(named(&p, Some("UBND Thành phố Hà Nội")), ["Timestamp"]);
    assert_eq!(named(&p, Some("Hà Nội")), ["Timestamp", "From/OrganName"]);
    let mut q = p.clone();
    let truc_edxml::Message::Status(s) = &mut q.message else {
        panic!("a status")
    };
    s.timestamp = None;
    s.from.fax = Some("024 3825 3537".into());
    s.response_for.organ_id = Some("000.00.00.H26".into());
    s.response_for.code = Some("1234/VPCP-KSTT".into());
    s.extras.0.push(truc_edxml::Unmodelled {
        after: None,
        xml: "<x:SoDen xmlns:x=\"urn:x\">18734</x:SoDen>".into(),
    });
    assert_eq!(named(&q, None), ["From", "ResponseFor/OrganId", "edXML"]);
    let w = status_not_carried(&q, &req, None);
    assert!(w[0].reason.starts_with("Fax not kept"), "{}", w[0].reason);
    assert!(w[1].reason.contains("\"000.00.00.G22\""), "{}", w[1].reason);
}
