//! Each refusal names the element and the reason.

use truc_edxml::*;

const MIN: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">
  <edXMLEnvelope>
    <edXMLHeader>
      <MessageHeader>
        <From><OrganId>000.00.00.G22</OrganId><OrganName>Văn phòng Chính phủ</OrganName></From>
        <To><OrganId>000.00.00.H41</OrganId><OrganName>UBND tỉnh Nghệ An</OrganName></To>
        <DocumentId>000.00.00.G22,2018/09/20,7816/VPCP-TTĐT</DocumentId>
        <Subject>V/v thử nghiệm kết nối</Subject>
      </MessageHeader>
    </edXMLHeader>
    <edXMLBody>
      <edXMLManifest version="1.0">
        <Reference><ContentId>cid:a</ContentId><AttachmentName>a.txt</AttachmentName></Reference>
      </edXMLManifest>
    </edXMLBody>
  </edXMLEnvelope>
  <AttachmentEncoded>
    <Attachment><ContentId>cid:a</ContentId><AttachmentName>a.txt</AttachmentName><ContentTransferEncoded>eGluIGNow6Bv</ContentTransferEncoded></Attachment>
  </AttachmentEncoded>
</edXML>"#;

const HEADER: &str = "edXML/edXMLEnvelope/edXMLHeader/MessageHeader";

fn try_parse(xml: &str) -> Result<Package> {
    parse(xml.as_bytes(), Limits::new(1 << 20), &mut MemoryAttachments::default())
}

fn refused(xml: &str) -> Error {
    match try_parse(xml) {
        Ok(_) => panic!("accepted:\n{xml}"),
        Err(e) => e,
    }
}

fn with(from: &str, to: &str) -> String {
    assert!(MIN.contains(from), "{from}");
    MIN.replacen(from, to, 1)
}

#[test]
fn the_minimal_package_is_accepted() {
    let mut files = MemoryAttachments::default();
    let p = parse(MIN.as_bytes(), Limits::new(1 << 20), &mut files).unwrap();
    assert_eq!(files.0, [b"xin ch\xc3\xa0o".to_vec()]);
    assert_eq!(p.attachments[0].size, 9);
}

#[test]
fn bytes_before_the_declaration() {
    let e = refused(&format!("\u{1}\u{2}junk{MIN}"));
    assert!(matches!(e, Error::NotXml { .. }), "{e:?}");
    assert_eq!(e.element(), "(prolog)");
    assert!(e.to_string().contains("before the XML declaration"), "{e}");
    // A single space is already something before the declaration.
    assert!(matches!(refused(&format!(" {MIN}")), Error::NotXml { .. }));
}

#[test]
fn an_unbound_prefix() {
    let e = refused(&with("<Reference>", r#"<Reference xlink:href="cid:a">"#));
    assert!(matches!(e, Error::NotXml { .. }), "{e:?}");
    assert_eq!(e.element(), "edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference");
    assert!(e.to_string().contains("xlink"), "{e}");
    let e = refused(&with(
        "<Subject>V/v thử nghiệm kết nối</Subject>",
        "<x:Subject>V/v</x:Subject>",
    ));
    assert_eq!(e.element(), format!("{HEADER}/Subject"));
}

#[test]
fn a_wrong_namespace() {
    let e = refused(&with(
        "http://www.mic.gov.vn/TBT/QCVN_102_2016",
        "http://www.mic.gov.vn/TBT/QCVN_102_2011",
    ));
    assert!(matches!(e, Error::WrongNamespace { .. }), "{e:?}");
    assert_eq!(e.element(), "edXML");
    let e = refused(&with(
        r#"<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">"#,
        "<edXML>",
    ));
    assert!(e.to_string().contains("(none)"), "{e}");
    // A modelled element in another namespace is a mistake, not an extension.
    let e = refused(&with("<MessageHeader>", r#"<MessageHeader xmlns="urn:other">"#));
    assert!(matches!(e, Error::WrongNamespace { .. }), "{e:?}");
    assert_eq!(e.element(), HEADER);
}

#[test]
fn missing_from_to_document_id() {
    let no_from = with(
        "<From><OrganId>000.00.00.G22</OrganId><OrganName>Văn phòng Chính phủ</OrganName></From>",
        "",
    );
    let e = refused(&no_from);
    assert!(matches!(e, Error::Missing { .. }), "{e:?}");
    assert_eq!(e.element(), format!("{HEADER}/From"));

    let e = refused(&with(
        "<To><OrganId>000.00.00.H41</OrganId><OrganName>UBND tỉnh Nghệ An</OrganName></To>",
        "",
    ));
    assert_eq!(e.element(), format!("{HEADER}/To"));

    let e = refused(&with(
        "<DocumentId>000.00.00.G22,2018/09/20,7816/VPCP-TTĐT</DocumentId>",
        "",
    ));
    assert!(matches!(e, Error::Missing { .. }), "{e:?}");
    assert_eq!(e.element(), format!("{HEADER}/DocumentId"));

    let e = refused(&with("<To><OrganId>000.00.00.H41</OrganId>", "<To><OrganId></OrganId>"));
    assert_eq!(e.element(), format!("{HEADER}/To/OrganId"));

    let e = refused(&with("<MessageHeader>", "<Other/><MessageHeader>").replace("MessageHeader", "MessageHeaderX"));
    assert_eq!(e.element(), HEADER);
}

#[test]
fn base64_that_does_not_decode() {
    let e = refused(&with("eGluIGNow6Bv", "eGluIGNo!6Bv"));
    let Error::Base64 { offset, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*offset, 8);
    assert_eq!(
        e.element(),
        "edXML/AttachmentEncoded/Attachment[1]/ContentTransferEncoded"
    );
    assert!(std::error::Error::source(&e).is_some(), "the decoder's error is kept");
    // Data after the padding.
    let e = refused(&with("eGluIGNow6Bv", "eA==eGlu"));
    assert!(matches!(e, Error::Base64 { .. }), "{e:?}");
    // Whitespace and character references to whitespace are fine.
    let ok = with("eGluIGNow6Bv", "eGlu&#13;&#10;IGNo\n  w6Bv");
    let mut files = MemoryAttachments::default();
    parse(ok.as_bytes(), Limits::new(1 << 20), &mut files).unwrap();
    assert_eq!(files.0[0], "xin chào".as_bytes());
}

#[test]
fn a_reference_with_no_attachment() {
    let e = refused(&with(
        "<Reference><ContentId>cid:a</ContentId>",
        "<Reference><ContentId>cid:b</ContentId>",
    ));
    let Error::DanglingReference { content_id, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(content_id, "cid:b");
    assert_eq!(e.element(), "edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference[1]");
}

#[test]
fn an_xml_bomb() {
    let bomb = r#"<?xml version="1.0"?>
<!DOCTYPE edXML [
  <!ENTITY lol "lol">
  <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
  <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
  <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
  <!ENTITY lol9 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
"#;
    let xml = MIN
        .replacen(r#"<?xml version="1.0" encoding="UTF-8"?>"#, bomb, 1)
        .replace("V/v thử nghiệm kết nối", "&lol9;");
    let e = refused(&xml);
    assert!(matches!(e, Error::Doctype { .. }), "{e:?}");
    assert_eq!(e.element(), "(prolog)");
    // Without its DTD, an entity reference is refused by name where it is used.
    let e = refused(&with("V/v thử nghiệm kết nối", "&lol9;"));
    let Error::Entity { name, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(name, "lol9");
    assert_eq!(e.element(), format!("{HEADER}/Subject"));
    // A DOCTYPE of many megabytes is stopped by the markup limit before it is whole.
    let huge = format!(
        "<?xml version=\"1.0\"?><!DOCTYPE edXML [{}]><edXML/>",
        "<!-- x -->".repeat(300_000)
    );
    let limits = Limits {
        max_package_bytes: 1 << 30,
        max_markup_bytes: 1 << 20,
    };
    let e = parse(huge.as_bytes(), limits, &mut Discard).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
}

#[test]
fn external_entities() {
    let xxe = r#"<?xml version="1.0"?>
<!DOCTYPE edXML [ <!ENTITY xxe SYSTEM "file:///etc/passwd"> ]>
"#;
    let xml = MIN
        .replacen(r#"<?xml version="1.0" encoding="UTF-8"?>"#, xxe, 1)
        .replace("V/v thử nghiệm kết nối", "&xxe;");
    let e = refused(&xml);
    assert!(matches!(e, Error::Doctype { .. }), "{e:?}");
    assert!(e.to_string().contains("external entities"), "{e}");
    // An external DTD, too.
    let xml = MIN.replacen(
        r#"<?xml version="1.0" encoding="UTF-8"?>"#,
        "<?xml version=\"1.0\"?>\n<!DOCTYPE edXML SYSTEM \"http://attacker.example/x.dtd\">",
        1,
    );
    assert!(matches!(refused(&xml), Error::Doctype { .. }));
    // In an attribute value.
    let e = refused(&with(
        r#"<edXMLManifest version="1.0">"#,
        r#"<edXMLManifest version="&xxe;">"#,
    ));
    assert!(matches!(e, Error::Entity { .. }), "{e:?}");
    assert_eq!(e.element(), "edXML/edXMLEnvelope/edXMLBody/edXMLManifest@version");
}

#[test]
fn a_package_over_the_size_limit() {
    let limit = MIN.len() as u64 - 100;
    let e = parse(MIN.as_bytes(), Limits::new(limit), &mut Discard).unwrap_err();
    let Error::TooLarge { limit: l, what, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!((*l, *what), (limit, "package"));
    // The limit counts attachment base64 too.
    let big = with("eGluIGNow6Bv", &"QUJD".repeat(100_000));
    let e = parse(big.as_bytes(), Limits::new(200_000), &mut Discard).unwrap_err();
    assert!(matches!(e, Error::TooLarge { .. }), "{e:?}");
    assert_eq!(
        e.element(),
        "edXML/AttachmentEncoded/Attachment[1]/ContentTransferEncoded"
    );
    // Markup other than attachments is bounded on its own: a 2 MiB Subject.
    let long = with("V/v thử nghiệm kết nối", &"Trích yếu ".repeat(200_000));
    let limits = Limits {
        max_package_bytes: 1 << 30,
        max_markup_bytes: 1 << 20,
    };
    let e = parse(long.as_bytes(), limits, &mut Discard).unwrap_err();
    let Error::TooLarge { what, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(what.starts_with("markup"), "{e}");
    assert_eq!(e.element(), format!("{HEADER}/Subject"));
    // Exactly at the limit is fine.
    parse(MIN.as_bytes(), Limits::new(MIN.len() as u64), &mut Discard).unwrap();
}

#[test]
fn other_refusals_name_the_element() {
    let e = refused(&with(
        "<Subject>",
        "<DocumentType><Type>một</Type></DocumentType><Subject>",
    ));
    assert_eq!(e.element(), format!("{HEADER}/DocumentType/Type"));
    assert!(e.to_string().contains("not an integer"), "{e}");

    let e = refused(&with(
        "<Subject>V/v thử nghiệm kết nối</Subject>",
        "<Subject>V/v <b>đậm</b></Subject>",
    ));
    assert_eq!(e.element(), format!("{HEADER}/Subject"));

    let e = refused(&with("</edXML>", "</edXMLX>"));
    assert!(matches!(e, Error::NotXml { source: Some(_), .. }), "{e:?}");

    let e = refused(&MIN[..MIN.len() - 200]);
    assert!(matches!(e, Error::NotXml { .. }), "{e:?}");

    let e = refused(&with("<Subject>", "lạc chỗ<Subject>"));
    assert_eq!(e.element(), HEADER);

    // A status message: an unknown code, a missing ResponseFor.
    let status = r#"<?xml version="1.0" encoding="UTF-8"?>
<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"><edXMLEnvelope><edXMLHeader><MessageHeader>
<From><OrganId>000.00.00.H41</OrganId></From>
<ResponseFor><OrganId>000.00.00.G22</OrganId><DocumentId>000.00.00.G22,2018/09/20,7816/VPCP-TTĐT</DocumentId></ResponseFor>
<StatusCode>03</StatusCode><Description>Đã tiếp nhận</Description><Timestamp>2018/09/20 10:00:00</Timestamp>
</MessageHeader></edXMLHeader></edXMLEnvelope></edXML>"#;
    assert!(try_parse(status).is_ok());
    let e = refused(&status.replace(">03<", ">07<"));
    assert_eq!(e.element(), format!("{HEADER}/StatusCode"));
    let e = refused(&status.replace("<ResponseFor><OrganId>000.00.00.G22</OrganId><DocumentId>000.00.00.G22,2018/09/20,7816/VPCP-TTĐT</DocumentId></ResponseFor>", ""));
    assert!(matches!(e, Error::Missing { .. }), "{e:?}");
    assert_eq!(e.element(), format!("{HEADER}/ResponseFor"));
}

#[test]
fn the_declaration_is_checked() {
    let e = refused(&with(r#"version="1.0" encoding="UTF-8""#, r#"version="&xxe;""#));
    assert_eq!(e.element(), "(prolog)");
    let e = refused(&with(r#"encoding="UTF-8""#, r#"encoding="windows-1258""#));
    assert!(e.to_string().contains("windows-1258"), "{e}");
    assert!(try_parse(&with(r#"encoding="UTF-8""#, r#"encoding="utf-8""#)).is_ok());
    assert!(
        try_parse(&with(r#"<?xml version="1.0" encoding="UTF-8"?>"#, "")).is_ok(),
        "the declaration is optional"
    );
}

#[test]
fn deeply_nested_extensions() {
    let deep = format!(
        "<v:x xmlns:v=\"urn:v\">{}{}</v:x>",
        "<v:x>".repeat(100_000),
        "</v:x>".repeat(100_000)
    );
    let e = refused(&with("<Subject>", &format!("{deep}<Subject>")));
    assert!(e.to_string().contains("nested deeper"), "{e}");
    assert_eq!(e.element(), format!("{HEADER}/x"));
    let shallow = format!(
        "<v:x xmlns:v=\"urn:v\">{}{}</v:x>",
        "<v:x>".repeat(60),
        "</v:x>".repeat(60)
    );
    assert!(try_parse(&with("<Subject>", &format!("{shallow}<Subject>"))).is_ok());
}

#[test]
fn the_sink_failing_is_reported_with_its_cause() {
    let mut failing = |_: usize, _: &[u8]| -> std::io::Result<()> { Err(std::io::Error::other("disk full")) };
    let e = parse(MIN.as_bytes(), Limits::new(1 << 20), &mut failing).unwrap_err();
    let Error::Attachment { index, .. } = &e else {
        panic!("{e:?}")
    };
    assert_eq!(*index, 0);
    assert_eq!(std::error::Error::source(&e).unwrap().to_string(), "disk full");
}
