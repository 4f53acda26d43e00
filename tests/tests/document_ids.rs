//! Document ids as the axis writes them (issue 15 item 4), against a real hub:
//! an id must begin with its sender's code, disagreements with the number,
//! notation or promulgation date (and impossible dates) are warnings in the
//! acceptance, and ResponseFor ids, which belong to other agencies, travel
//! unchanged.

use prost::Message;
use tonic::Code;
use truc_client::Client;
use truc_proto::v1::{BusinessType, DocumentHeader, ResponseFor, SendResponse, SignerInfo};
use truc_tests::{drain, header, sign, TestHub};

const G22: &str = "000.00.00.G22";
const H26: &str = "000.00.00.H26";

/// A header as a records office fills it: number, notation, date, signer.
fn numbered(id: &str, number: &str, notation: &str, date: &str) -> DocumentHeader {
    DocumentHeader {
        code_number: number.into(),
        code_notation: notation.into(),
        promulgation_date: date.into(),
        promulgation_place: "Hà Nội".into(),
        signer: Some(SignerInfo {
            competence: "KT. BỘ TRƯỞNG".into(),
            position: "Thứ trưởng".into(),
            full_name: "Nguyễn Văn A".into(),
        }),
        document_type: "Công văn".into(),
        ..header(&[H26], id)
    }
}

async fn send(c: &Client, h: DocumentHeader) -> Result<SendResponse, truc_client::ClientError> {
    c.send(sign(c, h, b"noi dung")).await
}

#[tokio::test]
async fn an_id_with_another_agencys_code_is_refused_and_nothing_is_stored() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;
    for id in [
        format!("{H26},2026/12/06,12/UBND"),
        // Another format of the sender's own code is another code.
        "G22,2026/12/06,12/VPCP".to_string(),
    ] {
        let err = send(&g22, numbered(&id, "12", "VPCP", "2026/12/06"))
            .await
            .expect_err("another agency's prefix is refused");
        assert_eq!(err.code(), Some(Code::InvalidArgument), "{err:?}");
        assert!(
            err.to_string()
                .contains(&format!("document_id must start with the sender's code \"{G22},\"")),
            "{err}"
        );
    }
    assert_eq!(hub.queued().await, vec![(G22.into(), 0), (H26.into(), 0)]);
    assert!(drain(&h26, 8).await.is_empty());
}

#[tokio::test]
async fn disagreements_are_warnings_in_the_acceptance() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;

    // All in agreement: no warnings.
    let ok = send(
        &g22,
        numbered(
            &format!("{G22},2026/12/06,12/VPCP-KSTT"),
            "12",
            "VPCP-KSTT",
            "2026/12/06",
        ),
    )
    .await
    .unwrap();
    assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);

    // The id's date and number disagree with the header's: accepted, two warnings.
    let r = send(
        &g22,
        numbered(
            &format!("{G22},2026/12/05,13/VPCP-KSTT"),
            "14",
            "VPCP-KSTT",
            "2026/12/06",
        ),
    )
    .await
    .unwrap();
    assert!(!r.duplicate && r.hub_document_id > ok.hub_document_id);
    assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
    assert!(
        r.warnings[0].starts_with("document_id: date 2026/12/05 differs from the promulgation date 2026/12/06"),
        "{:?}",
        r.warnings
    );
    assert!(
        r.warnings[1].starts_with("document_id: number/notation \"13/VPCP-KSTT\" differs"),
        "{:?}",
        r.warnings
    );

    // An impossible date, in the id and as the promulgation date.
    let r = send(
        &g22,
        numbered(
            &format!("{G22},2026/02/30,15/VPCP-KSTT"),
            "15",
            "VPCP-KSTT",
            "2026/02/30",
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        r.warnings,
        [
            "document_id: date \"2026/02/30\" is not a valid yyyy/MM/dd date",
            "promulgation_date: \"2026/02/30\" is not a valid yyyy/MM/dd date",
        ]
    );

    // A header of before these fields (an opaque id, no number, no date) still
    // goes through, with a word about the id's form.
    let old = send(&g22, header(&[H26], "old/1")).await.unwrap();
    assert_eq!(
        old.warnings,
        ["document_id: not of the form <sender code>,<yyyy/MM/dd>,<number>/<notation>"]
    );
    // Sending it again: a duplicate, the same words.
    let again = send(&g22, header(&[H26], "old/1")).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.warnings, old.warnings);

    // Every one of them is delivered as signed.
    let got = drain(&h26, 16).await;
    assert_eq!(got.len(), 4);
    let h = DocumentHeader::decode(got[2].document.as_ref().unwrap().header.as_slice()).unwrap();
    assert_eq!(h.promulgation_date, "2026/02/30");
    assert_eq!(h.signer.unwrap().full_name, "Nguyễn Văn A");
}

#[tokio::test]
async fn response_for_ids_travel_unchanged_and_corrections_pass() {
    let hub = TestHub::start().await;
    let g22 = hub.agency(G22).await;
    let h26 = hub.agency(H26).await;

    // H26 answers G22's document; the ResponseFor names G22's id (and an
    // impossible date, as test data does): not checked, not warned about.
    let theirs = ResponseFor {
        organ_id: G22.into(),
        code: "7816/VPCP-TTĐT".into(),
        promulgation_date: "2014/02/30".into(),
        document_id: format!("{G22},2014/02/30,7816/VPCP-TTĐT"),
    };
    let mut h = numbered(&format!("{H26},2026/12/06,40/UBND-VX"), "40", "UBND-VX", "2026/12/06");
    h.to = vec![G22.into()];
    h.response_for = vec![theirs.clone()];
    h.to_places = vec!["Như trên".into(), "Lưu: VT".into()];
    h.steering_type = 1;
    let r = send(&h26, h).await.unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
    let got = drain(&g22, 8).await;
    let h = DocumentHeader::decode(got[0].document.as_ref().unwrap().header.as_slice()).unwrap();
    assert_eq!(h.response_for, [theirs]);
    assert_eq!(h.to_places, ["Như trên", "Lưu: VT"]);
    assert_eq!(h.steering_type, 1);

    // A revoke refers to the sender's own document: its ids pass.
    let original = format!("{H26},2026/12/06,40/UBND-VX");
    let mut revoke = numbered(&format!("{H26},2026/12/06,41/UBND-VX"), "41", "UBND-VX", "2026/12/06");
    revoke.to = vec![G22.into()];
    revoke.business_type = BusinessType::Revoke as i32;
    revoke.reference_document_id = original;
    let r = send(&h26, revoke).await.unwrap();
    assert!(r.warnings.is_empty(), "{:?}", r.warnings);
}
