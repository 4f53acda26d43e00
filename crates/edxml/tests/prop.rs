//! Property: any model the writer writes, the parser reads back equal, field by field,
//! whatever the text holds (XML's special characters, Vietnamese, whitespace at the
//! edges, empty values) and whatever the attachment bytes.

use prop::collection::vec;
use proptest::prelude::*;
use truc_edxml::*;

fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

const CHARS: &[char] = &[
    'a', 'Z', '0', '9', ' ', '\t', '\n', '<', '>', '&', '"', '\'', ';', '/', '=', ':', '#', ']', 'ạ', 'Đ', 'ữ', 'ệ',
    'ố', '–', '…', '€', '😀',
];

fn text() -> impl Strategy<Value = String> {
    vec(prop::sample::select(CHARS), 0..20).prop_map(|v| v.into_iter().collect())
}

fn opt() -> impl Strategy<Value = Option<String>> {
    prop::option::of(text())
}

/// Non-empty, no whitespace: agency codes, document ids.
fn id() -> impl Strategy<Value = String> {
    vec(
        prop::sample::select(&['0', '9', '.', ',', '/', 'G', 'H', 'Đ', '-', '&', '<'][..]),
        1..30,
    )
    .prop_map(|v| v.into_iter().collect())
}

fn date() -> impl Strategy<Value = EdDate> {
    let civil = (1900i16..2100, 1i8..=12, 1i8..=28).prop_map(|(y, m, d)| jiff::civil::date(y, m, d));
    prop_oneof![
        civil.clone().prop_map(EdDate::Date),
        civil.prop_map(EdDate::DayFirst),
        id().prop_map(|t| EdDate::Verbatim(format!("ngày {t}"))),
    ]
}

fn datetime() -> impl Strategy<Value = EdDateTime> {
    let civil = (1900i16..2100, 1i8..=12, 1i8..=28, 0i8..24, 0i8..60, 0i8..60)
        .prop_map(|(y, mo, d, h, mi, s)| jiff::civil::datetime(y, mo, d, h, mi, s, 0));
    prop_oneof![
        civil.prop_map(EdDateTime::DateTime),
        id().prop_map(|t| EdDateTime::Verbatim(format!("lúc {t}")))
    ]
}

fn org() -> impl Strategy<Value = Organization> {
    (id(), opt(), opt(), opt(), opt(), opt(), opt(), opt()).prop_map(|(organ_id, c, n, a, e, t, f, w)| Organization {
        organ_id,
        organization_in_charge: c,
        organ_name: n,
        organ_add: a,
        email: e,
        telephone: t,
        fax: f,
        website: w,
        extras: Extras::default(),
    })
}

fn response_for() -> impl Strategy<Value = ResponseFor> {
    (opt(), opt(), prop::option::of(date()), opt()).prop_map(|(organ_id, code, promulgation_date, document_id)| {
        ResponseFor {
            organ_id,
            code,
            promulgation_date,
            document_id,
            extras: Extras::default(),
        }
    })
}

fn staff() -> impl Strategy<Value = StaffInfo> {
    (opt(), opt(), opt(), opt(), opt(), opt()).prop_map(
        |(department, department_id, staff, staff_id, email, mobile)| StaffInfo {
            department,
            department_id,
            staff,
            staff_id,
            email,
            mobile,
            extras: Extras::default(),
        },
    )
}

fn header() -> impl Strategy<Value = MessageHeader> {
    let first = (
        org(),
        vec(org(), 1..3),
        id(),
        prop::option::of((opt(), opt())),
        prop::option::of((opt(), prop::option::of(date()))),
        prop::option::of((any::<Option<i32>>(), any::<Option<i32>>(), opt())),
        opt(),
        opt(),
    );
    let second = (
        prop::option::of((opt(), opt(), opt())),
        prop::option::of(date()),
        prop::option::of(vec(text(), 0..3)),
        prop::option::of((
            any::<Option<i32>>(),
            opt(),
            opt(),
            any::<Option<i64>>(),
            any::<Option<i64>>(),
            prop::option::of(vec(text(), 0..3)),
        )),
        vec(response_for(), 0..3),
        any::<Option<i32>>(),
    );
    (first, second).prop_map(|((from, to, document_id, code, prom, dtype, subject, content), rest)| {
        let (signer, due_date, to_places, other, response_for, steering_type) = rest;
        MessageHeader {
            from,
            to,
            document_id,
            code: code.map(|(number, notation)| Code {
                number,
                notation,
                extras: Extras::default(),
            }),
            promulgation: prom.map(|(place, date)| PromulgationInfo {
                place,
                date,
                extras: Extras::default(),
            }),
            document_type: dtype.map(|(kind, detail, name)| DocumentType {
                kind,
                detail,
                name,
                extras: Extras::default(),
            }),
            subject,
            content,
            signer: signer.map(|(competence, position, full_name)| SignerInfo {
                competence,
                position,
                full_name,
                extras: Extras::default(),
            }),
            due_date,
            to_places,
            other_info: other.map(|(priority, sphere, typer, amount, pages, appendixes)| OtherInfo {
                priority,
                sphere_of_promulgation: sphere,
                typer_notation: typer,
                promulgation_amount: amount,
                page_amount: pages,
                appendixes,
                extras: Extras::default(),
            }),
            response_for,
            steering_type,
            extras: Extras::default(),
        }
    })
}

fn status() -> impl Strategy<Value = StatusHeader> {
    (
        org(),
        response_for(),
        prop::option::of(staff()),
        prop::sample::select(&StatusCode::ALL[..]),
        opt(),
        prop::option::of(datetime()),
    )
        .prop_map(
            |(from, response_for, staff, status, description, timestamp)| StatusHeader {
                from,
                response_for,
                staff,
                status,
                description,
                timestamp,
                extras: Extras::default(),
            },
        )
}

fn business() -> impl Strategy<Value = Business> {
    let doc_type = prop::option::of(prop::sample::select(
        &[
            BusinessDocType::New,
            BusinessDocType::Revoke,
            BusinessDocType::Update,
            BusinessDocType::Replace,
        ][..],
    ));
    let receiver = (
        opt(),
        prop::option::of(prop::sample::select(&[ReceiverType::Removed, ReceiverType::Added][..])),
    )
        .prop_map(|(organ_id, receiver_type)| Receiver {
            organ_id,
            receiver_type,
            extras: Extras::default(),
        });
    let info = (opt(), opt(), prop::option::of(vec(receiver, 0..3))).prop_map(
        |(document_info, document_receiver, receivers)| BusinessDocumentInfo {
            document_info,
            document_receiver,
            receivers,
            extras: Extras::default(),
        },
    );
    let replacement = (opt(), vec(text(), 0..3)).prop_map(|(document_id, organ_ids)| ReplacementInfo {
        document_id,
        organ_ids,
        extras: Extras::default(),
    });
    (
        opt(),
        doc_type,
        opt(),
        any::<Option<i32>>(),
        prop::option::of(info),
        prop::option::of(vec(replacement, 0..3)),
        prop::option::of(staff()),
    )
        .prop_map(
            |(document_id, doc_type, reason, paper, document_info, replacements, staff)| Business {
                document_id,
                doc_type,
                reason,
                paper,
                document_info,
                replacements,
                staff,
                extras: Extras::default(),
            },
        )
}

fn trace() -> impl Strategy<Value = TraceHeaderList> {
    let hop = (opt(), prop::option::of(datetime())).prop_map(|(organ_id, timestamp)| TraceHeader {
        organ_id,
        timestamp,
        extras: Extras::default(),
    });
    (vec(hop, 0..3), prop::option::of(business())).prop_map(|(traces, business)| TraceHeaderList {
        attributes: vec![Attribute {
            name: "version".into(),
            namespace: None,
            value: "1.0".into(),
        }],
        traces,
        business,
        extras: Extras::default(),
    })
}

/// Attachments (metadata and bytes) and a manifest naming some of them.
fn attachments() -> impl Strategy<Value = (Vec<Attachment>, Vec<Vec<u8>>, Option<Manifest>)> {
    let one = (opt(), opt(), opt(), vec(any::<u8>(), 0..200));
    (vec(one, 0..4), any::<bool>()).prop_map(|(list, manifest)| {
        let mut metas = Vec::new();
        let mut bytes = Vec::new();
        let mut references = Vec::new();
        for (i, (name, description, content_type, data)) in list.into_iter().enumerate() {
            let content_id = Some(format!("cid:tệp-{i}"));
            references.push(Reference {
                content_id: content_id.clone(),
                attachment_name: name.clone(),
                ..Reference::default()
            });
            metas.push(Attachment {
                content_id,
                name,
                description,
                content_type,
                ..Attachment::default()
            });
            bytes.push(data);
        }
        let manifest = manifest.then_some(Manifest {
            references,
            ..Manifest::default()
        });
        (metas, bytes, manifest)
    })
}

fn package() -> impl Strategy<Value = (Package, MemoryAttachments)> {
    let message = prop_oneof![header().prop_map(Message::Document), status().prop_map(Message::Status)];
    let style = prop::sample::select(&[PrefixStyle::Prefixed, PrefixStyle::Default][..]);
    (message, prop::option::of(trace()), attachments(), style).prop_map(
        |(message, trace, (attachments, bytes, manifest), style)| {
            let package = Package {
                style,
                root_attributes: Vec::new(),
                message,
                trace,
                manifest,
                attachments,
                root_extras: Extras::default(),
                envelope_extras: Extras::default(),
                header_extras: Extras::default(),
                body_extras: Extras::default(),
                attachments_extras: Extras::default(),
                dropped: Vec::new(),
            };
            (package, MemoryAttachments(bytes))
        },
    )
}

proptest! {
    #![proptest_config(config(128))]

    #[test]
    fn what_is_written_is_read_back_equal((package, mut files) in package()) {
        let out = write(&package, Vec::new(), &mut files).unwrap();
        let mut read = MemoryAttachments::default();
        let back = parse(out.as_slice(), Limits::new(1 << 20), &mut read);
        let mut back = match back {
            Ok(p) => p,
            Err(e) => panic!("{e}\n{}", String::from_utf8_lossy(&out)),
        };
        // The parser records size and SHA-256; the model written had none.
        for (a, bytes) in back.attachments.iter_mut().zip(&files.0) {
            prop_assert_eq!(a.size, bytes.len() as u64);
            a.size = 0;
            a.sha256 = [0; 32];
        }
        let mut original = package.clone();
        for a in &mut original.attachments {
            a.sha256 = [0; 32];
        }
        prop_assert_eq!(&back, &original);
        prop_assert_eq!(&read.0, &files.0);
        prop_assert!(same_content(&back, &original));
    }
}
