//! `truc demo` (README, "Set-up"): the real binary sends a real-looking
//! công văn — number and notation, place and date of promulgation, signer
//! and position, a Vietnamese subject, a PDF it makes as the attachment —
//! and shows it arriving at both recipients, checked; `--keep` leaves the
//! received PDF, which is well-formed (every cross-reference offset lands
//! on its object).

mod support;

use support::{text, truc_command};

const SUBJECT: &str = "V/v kết nối hệ thống quản lý văn bản với Trục liên thông văn bản quốc gia";

/// Checks the PDF's structure: header, trailer, each offset of the
/// cross-reference table on its object, the startxref on the table.
fn well_formed_pdf(pdf: &[u8]) {
    assert!(pdf.starts_with(b"%PDF-1.4\n"));
    assert!(pdf.ends_with(b"%%EOF\n"));
    let s = String::from_utf8_lossy(pdf);
    let startxref: usize = s
        .rsplit("startxref\n")
        .next()
        .unwrap()
        .lines()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(pdf[startxref..].starts_with(b"xref\n0 7\n"), "startxref");
    let table = &s[startxref..];
    let offsets: Vec<usize> = table
        .lines()
        .filter(|l| l.ends_with(" 00000 n "))
        .map(|l| l[..10].parse().unwrap())
        .collect();
    assert_eq!(offsets.len(), 6);
    for (i, o) in offsets.iter().enumerate() {
        let obj = format!("{} 0 obj\n", i + 1);
        assert!(pdf[*o..].starts_with(obj.as_bytes()), "object {} at {o}", i + 1);
    }
    // The stream's length is its bytes'.
    let stream = s.find("stream\n").unwrap() + "stream\n".len();
    let end = s.find("endstream").unwrap();
    assert!(s.contains(&format!("/Length {} >>", end - stream)));
}

#[test]
fn the_demo_sends_a_cong_van_with_a_pdf_and_shows_it_arriving() {
    let tmp = tempfile::tempdir().unwrap();
    let keep = tmp.path().join("demo");
    let o = truc_command(tmp.path(), &["demo", "--keep", keep.to_str().unwrap()])
        .output()
        .unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    // Sent: number and notation, place, signer and position, subject, the
    // attachment, the id in the axis's form (today's local date).
    for want in [
        "signed công văn số 123/VPCP-KSTT, Hà Nội, ngày ",
        "KT. BỘ TRƯỞNG, CHỦ NHIỆM PHÓ CHỦ NHIỆM Nguyễn Văn An",
        SUBJECT,
        "with 123-VPCP-KSTT.pdf (",
        "duplicate=true",
    ] {
        assert!(out.contains(want), "{want:?} not in\n{out}");
    }
    let id = out.split("as \"").nth(1).unwrap().split('"').next().unwrap();
    let parts = truc_edxml::DocumentIdParts::split(id).unwrap_or_else(|| panic!("{id}"));
    assert_eq!(
        (parts.sender, parts.number_notation),
        ("000.00.00.G22", "123/VPCP-KSTT")
    );
    assert!(truc_edxml::EdDate::parse(parts.date).date().is_some(), "{id}");
    // Arrived at both, the attachment checked and saved.
    for (code, name) in [
        ("000.00.00.H26", "UBND Thành phố Hà Nội"),
        ("000.00.00.H29", "UBND Thành phố Hồ Chí Minh"),
    ] {
        let got = format!("{code} ({name}) got công văn số 123/VPCP-KSTT from 000.00.00.G22 [khan], Hà Nội, ngày");
        assert!(out.contains(&got), "{got:?} not in\n{out}");
        let saved = format!("checked against the signed header, saved as inbox/{code}/123-VPCP-KSTT.pdf");
        assert!(out.contains(&saved), "{saved:?} not in\n{out}");
    }
    assert!(out.contains("Outboxes now hold 0 undelivered copies"), "{out}");

    let h26 = std::fs::read(keep.join("inbox/000.00.00.H26/123-VPCP-KSTT.pdf")).unwrap();
    let h29 = std::fs::read(keep.join("inbox/000.00.00.H29/123-VPCP-KSTT.pdf")).unwrap();
    assert_eq!(h26, h29);
    assert!(
        out.contains(&format!("({} bytes, a PDF made by the demo)", h26.len())),
        "{out}"
    );
    well_formed_pdf(&h26);
    let pdf = String::from_utf8_lossy(&h26);
    assert!(pdf.contains("(So: 123/VPCP-KSTT) Tj"), "the page states the number");
    let title: String = "Công văn số 123/VPCP-KSTT"
        .encode_utf16()
        .map(|u| format!("{u:04X}"))
        .collect();
    assert!(
        pdf.contains(&format!("/Title <FEFF{title}>")),
        "the title, in Vietnamese"
    );
}

#[test]
fn the_federation_demo_crosses_three_hubs_and_brings_the_statuses_back() {
    let tmp = tempfile::tempdir().unwrap();
    let o = truc_command(tmp.path(), &["demo", "--federation"]).output().unwrap();
    let out = text(&o);
    assert!(o.status.success(), "{out}");
    for want in [
        "urn:truc:hub:h49",
        "urn:truc:hub:national",
        "urn:truc:hub:g12",
        "h49 learned from the federated directory: 000.00.02.G12 is served by hub g12",
        "000.00.00.G22 (Văn phòng Chính phủ) at hub national: ",
        "000.00.02.G12 (Vụ Tổ chức cán bộ, Bộ Tài chính) at hub g12: ",
        "from 000.00.01.H49, signature verified, acknowledged",
        "status notice: 000.00.02.G12 reported 01 \"đã đến\"",
        "status notice: 000.00.02.G12 reported 03 ",
        "000.00.00.G22  delivered  via hub national  status -",
        "000.00.02.G12  delivered  via hub national  status 03",
        "holds national's own ACCEPTED receipt",
        "verified with national's receipts.pub alone",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}
