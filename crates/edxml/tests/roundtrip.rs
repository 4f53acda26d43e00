//! parse → write → parse over the fixtures in tests/fixtures (written for these tests,
//! modelled on the edXML packages agency systems send): one package per business type,
//! one status message per status code, both prefix styles, vendor extensions, signatures.

use truc_edxml::*;

const LIMITS: Limits = Limits {
    max_package_bytes: 64 << 20,
    max_markup_bytes: 16 << 20,
};

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn fixtures() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(format!("{}/tests/fixtures", env!("CARGO_MANIFEST_DIR")))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".edxml"))
        .collect();
    names.sort();
    names
}

fn read(bytes: &[u8]) -> (Package, MemoryAttachments) {
    let mut files = MemoryAttachments::default();
    let p = parse(bytes, LIMITS, &mut files).unwrap_or_else(|e| panic!("{e} ({e:?})"));
    (p, files)
}

fn document(p: &Package) -> &MessageHeader {
    match &p.message {
        Message::Document(h) => h,
        Message::Status(_) => panic!("a status message"),
    }
}

/// Every unmodelled element of a package, in document order of containers.
fn all_extras(p: &Package) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for e in [
        &p.root_extras,
        &p.envelope_extras,
        &p.header_extras,
        &p.body_extras,
        &p.attachments_extras,
    ] {
        out.extend(e.0.iter().map(|u| u.xml.clone()));
    }
    match &p.message {
        Message::Document(h) => {
            out.extend(h.extras.0.iter().map(|u| u.xml.clone()));
            if let Some(o) = &h.other_info {
                out.extend(o.extras.0.iter().map(|u| u.xml.clone()));
            }
        }
        Message::Status(s) => out.extend(s.extras.0.iter().map(|u| u.xml.clone())),
    }
    out
}

#[test]
fn every_fixture_round_trips_in_both_styles() {
    let names = fixtures();
    assert_eq!(names.len(), 13, "{names:?}");
    for name in names {
        let original = fixture(&name);
        let (p1, mut files1) = read(&original);
        for style in [p1.style, PrefixStyle::Prefixed, PrefixStyle::Default] {
            let mut p = p1.clone();
            p.style = style;
            let out = write(&p, Vec::new(), &mut files1).unwrap();
            let (p2, files2) = read(&out);
            if let Some(d) = first_difference(&p1, &p2) {
                panic!("{name} ({style:?}): {d}\n{}", String::from_utf8_lossy(&out));
            }
            assert!(same_content(&p1, &p2));
            assert_eq!(p2.style, style, "{name}");
            assert_eq!(files1, files2, "{name}: attachment bytes");
            // Unmodelled elements come back unchanged, byte for byte.
            assert_eq!(all_extras(&p1), all_extras(&p2), "{name}");
            // And the model itself is equal field by field, apart from the style.
            let mut p2s = p2.clone();
            p2s.style = p1.style;
            assert_eq!(p1, p2s, "{name}");
            // What the writer writes, it writes again byte for byte.
            let mut files2 = files2;
            let again = write(&p2, Vec::new(), &mut files2).unwrap();
            assert!(again == out, "{name} ({style:?}): the writer is not stable");
        }
    }
}

#[test]
fn new_document_prefixed_with_three_attachments_and_extensions() {
    let (p, files) = read(&fixture("doc_0_new_prefixed.edxml"));
    assert_eq!(p.style, PrefixStyle::Prefixed);
    let h = document(&p);
    assert_eq!(h.from.organ_id, "000.00.00.G22");
    assert_eq!(h.from.organ_name.as_deref(), Some("Văn phòng Chính phủ"));
    assert_eq!(
        h.to.iter().map(|t| t.organ_id.as_str()).collect::<Vec<_>>(),
        ["000.00.00.H41", "000.00.00.H49"]
    );
    assert_eq!(h.document_id, "000.00.00.G22,2018/09/20,7816/VPCP-TTĐT");
    let code = h.code.as_ref().unwrap();
    assert_eq!(
        (code.number.as_deref(), code.notation.as_deref()),
        (Some("7816"), Some("VPCP-TTĐT"))
    );
    let prom = h.promulgation.as_ref().unwrap();
    assert_eq!(prom.date, Some(EdDate::Date(jiff::civil::date(2018, 9, 20))));
    assert_eq!(h.document_type.as_ref().unwrap().name.as_deref(), Some("Công văn"));
    assert!(
        h.content.as_deref().unwrap().contains("30/6/2020 & báo cáo"),
        "entity resolved"
    );
    assert_eq!(
        h.signer.as_ref().unwrap().competence.as_deref(),
        Some("KT. BỘ TRƯỞNG, CHỦ NHIỆM")
    );
    assert_eq!(h.due_date, Some(EdDate::Date(jiff::civil::date(2018, 10, 5))));
    assert_eq!(h.to_places.as_ref().unwrap().len(), 3);
    let other = h.other_info.as_ref().unwrap();
    assert_eq!(
        (other.priority, other.page_amount, other.promulgation_amount),
        (Some(2), Some(3), Some(1))
    );
    assert_eq!(other.appendixes.as_ref().unwrap()[0], "Phụ lục I: Danh sách đơn vị");
    // Vendor extra inside OtherInfo, kept in place: after PageAmount.
    assert_eq!(other.extras.0.len(), 1);
    assert_eq!(
        other.extras.0[0].after,
        Some(Anchor {
            element: "PageAmount".into(),
            occurrence: 1
        })
    );
    assert!(other.extras.0[0].xml.starts_with("<edXML:Direction"));
    assert_eq!(h.response_for.len(), 1);
    assert_eq!(h.steering_type, Some(1));
    // Vendor extras after SteeringType, the second in its own namespace.
    assert_eq!(h.extras.0.len(), 2);
    assert!(h.extras.0[0].xml.contains("NV-2018-0918"));
    assert!(h.extras.0[1]
        .xml
        .starts_with("<vnpt:ApplicationType xmlns:vnpt=\"urn:vendor:vnpt:edxml-ext\">"));
    assert!(h.warnings().is_empty(), "{:?}", h.warnings());
    // The XML-DSig Signature (unprefixed, QCVN namespace) after the TraceHeaderList.
    assert_eq!(p.header_extras.0.len(), 1);
    assert_eq!(
        p.header_extras.0[0].after,
        Some(Anchor {
            element: "TraceHeaderList".into(),
            occurrence: 1
        })
    );
    assert!(p.header_extras.0[0]
        .xml
        .contains("<SignatureValue>R2nDoSB0cuG7iyBjaOG7ryBrw70gZ2nhuqMgbOG6rXA=</SignatureValue>"));
    // A root-level vendor element after AttachmentEncoded.
    assert!(p.root_extras.0[0].xml.starts_with("<ext:PackageInfo"));
    let trace = p.trace.as_ref().unwrap();
    assert_eq!(trace.traces.len(), 2);
    assert_eq!(
        trace.traces[1]
            .timestamp
            .as_ref()
            .unwrap()
            .to_timestamp(DEFAULT_OFFSET)
            .unwrap()
            .to_string(),
        "2018-09-20T01:16:42Z"
    );
    assert_eq!(trace.attributes.len(), 2);
    assert_eq!(trace.business.as_ref().unwrap().doc_type, Some(BusinessDocType::New));
    let manifest = p.manifest.as_ref().unwrap();
    assert_eq!(manifest.references.len(), 3);
    let href = &manifest.references[1].attributes[0];
    assert_eq!(
        (href.name.as_str(), href.namespace.as_deref()),
        ("xlink:href", Some("http://www.w3.org/1999/xlink"))
    );
    assert_eq!(p.attachments.len(), 3);
    assert_eq!(files.0.len(), 3);
    assert!(files.0[0].starts_with(b"%PDF-1.4"));
    assert_eq!(p.attachments[0].size, files.0[0].len() as u64);
    assert_eq!(
        String::from_utf8(files.0[2].clone()).unwrap(),
        "Lộ trình: quý III/2018 – quý II/2020.\n"
    );
}

#[test]
fn revoke_update_replace() {
    let (p, _) = read(&fixture("doc_1_revoke_default.edxml"));
    assert_eq!(p.style, PrefixStyle::Default);
    let b = p.trace.as_ref().unwrap().business.as_ref().unwrap();
    assert_eq!(b.doc_type, Some(BusinessDocType::Revoke));
    assert_eq!(b.reason.as_deref(), Some("Thu hồi văn bản điện tử"));
    assert_eq!(b.document_id.as_deref(), Some(document(&p).document_id.as_str()));
    assert_eq!(b.staff.as_ref().unwrap().staff.as_deref(), Some("Nguyễn Thị Thu Hà"));
    assert!(p.header_extras.0[0]
        .xml
        .starts_with("<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\">"));
    assert!(p.attachments.is_empty() && p.manifest.as_ref().unwrap().references.is_empty());

    let (p, _) = read(&fixture("doc_2_update_prefixed.edxml"));
    let b = p.trace.as_ref().unwrap().business.as_ref().unwrap();
    assert_eq!(b.doc_type, Some(BusinessDocType::Update));
    let receivers = b.document_info.as_ref().unwrap().receivers.as_ref().unwrap();
    let got: Vec<_> = receivers
        .iter()
        .map(|r| (r.organ_id.as_deref().unwrap(), r.receiver_type.unwrap()))
        .collect();
    assert_eq!(
        got,
        [
            ("000.00.00.H49", ReceiverType::Removed),
            ("000.00.00.H14", ReceiverType::Added)
        ]
    );

    let (p, files) = read(&fixture("doc_3_replace_default.edxml"));
    let h = document(&p);
    assert_eq!(h.to.len(), 3);
    let b = p.trace.as_ref().unwrap().business.as_ref().unwrap();
    assert_eq!(b.doc_type, Some(BusinessDocType::Replace));
    let reps = b.replacements.as_ref().unwrap();
    assert_eq!(reps.len(), 2);
    assert_eq!(
        reps[0].document_id.as_deref(),
        Some("000.00.00.G17,2019/03/12,120/BXD-VP")
    );
    assert_eq!(reps[0].organ_ids, ["000.00.00.H41", "000.00.00.H49"]);
    assert_eq!(reps[1].organ_ids, ["000.00.00.H26"]);
    // References to other agencies' documents are carried unchanged, impossible dates too.
    assert_eq!(
        h.response_for[0].promulgation_date,
        Some(EdDate::Verbatim("2014/02/30".into()))
    );
    assert_eq!(
        h.response_for[1].promulgation_date,
        Some(EdDate::DayFirst(jiff::civil::date(2019, 3, 15)))
    );
    // A ZIP in an attachment named .doc: bytes and ContentType are what count.
    assert_eq!(p.attachments[0].name.as_deref(), Some("qd-152.doc"));
    assert!(files.0[0].starts_with(b"PK\x03\x04"));
}

#[test]
fn one_status_message_per_code() {
    for code in StatusCode::ALL {
        let name = format!("status_{}.edxml", code.code());
        let (p, files) = read(&fixture(&name));
        let Message::Status(s) = &p.message else {
            panic!("{name}: not a status")
        };
        assert_eq!(s.status, code, "{name}");
        assert_eq!(
            s.response_for.document_id.as_deref(),
            Some("000.00.00.G22,2018/09/20,7816/VPCP-TTĐT"),
            "{name}"
        );
        assert!(s.description.as_deref().unwrap().contains("n"), "{name}");
        assert!(matches!(s.timestamp, Some(EdDateTime::DateTime(_))), "{name}");
        assert_eq!(s.staff.as_ref().unwrap().staff.as_deref(), Some("Lê Văn Hùng"));
        assert!(p.trace.is_none() && p.attachments.is_empty() && files.0.is_empty());
        let extension = matches!(code, StatusCode::Assigned | StatusCode::ChangeRefused);
        assert_eq!(s.extras.0.len(), usize::from(extension), "{name}");
    }
}

#[test]
fn comparison_sees_content_and_ignores_form() {
    let (p, mut files) = read(&fixture("doc_0_new_prefixed.edxml"));
    // Whitespace, prefixes, attribute order: same content.
    let mut q = p.clone();
    let Message::Document(h) = &mut q.message else {
        unreachable!()
    };
    h.subject = h.subject.as_ref().map(|s| format!("  {}\n ", s.replace(' ', "   ")));
    q.style = PrefixStyle::Default;
    q.trace.as_mut().unwrap().attributes.reverse();
    assert!(same_content(&p, &q), "{:?}", first_difference(&p, &q));
    // A field: different, named.
    let mut q = p.clone();
    let Message::Document(h) = &mut q.message else {
        unreachable!()
    };
    h.to[1].organ_name = Some("UBND tỉnh Quảng Nam".into());
    let d = first_difference(&p, &q).unwrap();
    assert_eq!(
        d.element,
        "edXML/edXMLEnvelope[1]/edXMLHeader[1]/MessageHeader[1]/To[2]/OrganName[1]"
    );
    // An unmodelled element's content: different.
    let mut q = p.clone();
    q.header_extras.0[0].xml = q.header_extras.0[0].xml.replace("R2nDoSB0", "AAAAAAAA");
    assert!(!same_content(&p, &q));
    // One byte of one attachment: different.
    files.0[1][10] ^= 1;
    let out = write(&p, Vec::new(), &mut files).unwrap();
    let (q, _) = read(&out);
    let d = first_difference(&p, &q).unwrap();
    assert!(d.element.contains("Attachment[2]/ContentTransferEncoded"), "{d}");
}

#[test]
fn an_extension_keeps_its_place_and_namespace_when_restyled() {
    let (p, mut files) = read(&fixture("doc_0_new_prefixed.edxml"));
    let mut q = p.clone();
    q.style = PrefixStyle::Default;
    let out = String::from_utf8(write(&q, Vec::new(), &mut files).unwrap()).unwrap();
    // The prefixed vendor element now declares the prefix it relied on.
    assert!(
        out.contains("<edXML:Direction xmlns:edXML=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">true</edXML:Direction>")
    );
    let page = out.find("<PageAmount>").unwrap();
    let direction = out.find("<edXML:Direction").unwrap();
    let appendixes = out.find("<Appendixes>").unwrap();
    assert!(page < direction && direction < appendixes);
}

#[test]
fn warnings_for_the_documents_own_id_and_dates() {
    let text = String::from_utf8(fixture("doc_0_new_prefixed.edxml")).unwrap();
    let text = text
        .replace(
            ">000.00.00.G22,2018/09/20,7816/VPCP-TTĐT<",
            ">000.00.00.G17,2018/02/30,7817/VPCP-TTĐT<",
        )
        .replace(">2018/10/05<", ">05/10/2018<");
    let (p, _) = read(text.as_bytes());
    let w = document(&p).warnings();
    let reasons: Vec<_> = w.iter().map(|w| format!("{}: {}", w.element, w.reason)).collect();
    assert_eq!(w.len(), 4, "{reasons:#?}");
    assert!(w.iter().all(|w| w.element.starts_with("MessageHeader/")));
}

#[test]
fn root_attributes_are_kept_and_other_attributes_reported() {
    let text = String::from_utf8(fixture("status_03.edxml")).unwrap();
    let text = text
        .replacen(
            "<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\">",
            "<edXML xmlns=\"http://www.mic.gov.vn/TBT/QCVN_102_2016\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
             xsi:schemaLocation=\"http://www.mic.gov.vn/TBT/QCVN_102_2016 edXML.xsd\">",
            1,
        )
        .replacen("<edXML:Description>", "<edXML:Description lang=\"vi\">", 1);
    let (p, mut files) = read(text.as_bytes());
    assert_eq!(p.root_attributes.len(), 1);
    assert_eq!(
        p.root_attributes[0].namespace.as_deref(),
        Some("http://www.w3.org/2001/XMLSchema-instance")
    );
    assert_eq!(p.dropped.len(), 1, "{:?}", p.dropped);
    assert_eq!(
        p.dropped[0].element,
        "edXML/edXMLEnvelope/edXMLHeader/MessageHeader/Description@lang"
    );
    let out = write(&p, Vec::new(), &mut files).unwrap();
    let (q, _) = read(&out);
    assert!(same_content(&p, &q));
    assert_eq!(q.root_attributes, p.root_attributes);
}

/// Truncated or corrupted packages are refused with an error, never a panic, and never
/// accepted as something else than what a complete package says.
#[test]
fn damaged_packages_are_refused_not_panicked_on() {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for name in fixtures() {
        let original = fixture(&name);
        let end = original.windows(8).rposition(|w| w == b"</edXML>").unwrap();
        for cut in (0..end).step_by(97) {
            let r = parse(&original[..cut], LIMITS, &mut MemoryAttachments::default());
            assert!(r.is_err(), "{name} cut at {cut} was accepted");
        }
        for _ in 0..200 {
            let mut damaged = original.clone();
            for _ in 0..3 {
                let at = (next() % damaged.len() as u64) as usize;
                let bytes = b"<>&;:/=\"' x\x00\xff";
                damaged[at] = bytes[(next() % bytes.len() as u64) as usize];
            }
            // Either outcome is fine; a panic is not.
            let _ = parse(damaged.as_slice(), LIMITS, &mut MemoryAttachments::default());
        }
    }
}
