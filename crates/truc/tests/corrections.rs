//! `truc revoke`, `truc update` and `truc replace` through the real `truc`
//! and `trucd`, as the axis sends corrections: a revoke and an update under
//! the original's own id (the same revoke again is a duplicate with the
//! same receipt), linked to the original in `truc track`; a replacement of
//! two old documents, each for its agencies. And `truc status --help`
//! states the status rules.

mod support;

use std::process::Command;

use support::{text, Hub, G0901, G22, H26, H29};

/// A recipient in `truc track`: agency, transport state, status.
type Row = (String, String, i64);
/// A correction in `truc track`: kind, reason, agencies.
type Linked = (String, String, Vec<String>);

/// `truc track id --json` of G22's document: (agency, state, status) per
/// recipient, and the corrections as (kind, reason, agencies).
trait Track {
    fn track(&self, id: &str) -> (Vec<Row>, Vec<Linked>);
}

impl Track for Hub {
    fn track(&self, id: &str) -> (Vec<Row>, Vec<Linked>) {
        let v = self.json(G22, &["track", id]);
        let rows = v["recipients"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["agency"].as_str().unwrap().to_string(),
                    r["state"].as_str().unwrap().to_string(),
                    // "03" as the axis writes it; null for none.
                    r["status"].as_str().map_or(0, |c| c.parse().unwrap()),
                )
            })
            .collect();
        let corrections = v["corrections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| {
                (
                    c["kind"].as_str().unwrap().to_string(),
                    c["reason"].as_str().unwrap().to_string(),
                    c["agencies"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|a| a.as_str().unwrap().to_string())
                        .collect(),
                )
            })
            .collect();
        (rows, corrections)
    }
}

fn row(agency: &str, state: &str, status: i64) -> Row {
    (agency.into(), state.into(), status)
}

#[test]
fn revoke_update_and_replace_as_the_axis_sends_them() {
    let hub = Hub::start();

    // Revoke, under the original's id: H26 has it, H29's copy is withdrawn.
    let a = "000.00.00.G22,2026/11/23,41/VPCP";
    hub.send(a, &format!("{H26},{H29}"));
    assert_eq!(hub.inbox(H26), vec![(0, a.to_string())]);
    let first = hub.json(G22, &["revoke", a, "--reason", "Thu hồi văn bản điện tử"]);
    assert_eq!(first["duplicate"], false, "{first}");
    assert_eq!(first["document_id"], a);
    // The same revoke again (signed again): a duplicate, the same receipt.
    let again = hub.json(G22, &["revoke", a, "--reason", "Thu hồi văn bản điện tử"]);
    assert_eq!(again["duplicate"], true, "{again}");
    assert_eq!(again["hub_document_id"], first["hub_document_id"]);
    assert_eq!(again["receipt"], first["receipt"]);
    // Another revoke of the same document: refused, a document is revoked once.
    let other = hub.truc(&hub.as_who(G22, &["revoke", a, "--reason", "lý do khác"]));
    assert!(!other.status.success());
    assert!(text(&other).contains("already revoked"), "{}", text(&other));
    // Linked to the original in `truc track`.
    let (rows, corrections) = hub.track(a);
    assert_eq!(rows, vec![row(H26, "delivered", 1), row(H29, "withdrawn", 0)]);
    assert_eq!(
        corrections,
        vec![(
            "revoke".to_string(),
            "Thu hồi văn bản điện tử".to_string(),
            vec![H26.to_string(), H29.to_string()]
        )]
    );
    let table = text(&hub.ok(&hub.as_who(G22, &["track", a])));
    assert!(table.contains("revoke: hub document"), "{table}");
    // H26 receives the revoke under the original's id and agrees.
    assert_eq!(hub.inbox(H26), vec![(1, a.to_string())]);
    assert!(hub.inbox(H29).is_empty());
    hub.ok(&hub.as_who(H26, &["status", a, "--code", "15"]));
    assert_eq!(hub.track(a).0[0], row(H26, "delivered", 15));

    // Update: G09.01 added (it gets the original and the update), H29
    // removed before it had it (withdrawn).
    let b = "000.00.00.G22,2026/11/23,42/VPCP";
    hub.send(b, &format!("{H26},{H29}"));
    hub.inbox(H26);
    let up = hub.json(
        G22,
        &[
            "update",
            b,
            "--add",
            G0901,
            "--remove",
            H29,
            "--reason",
            "Bổ sung nơi nhận",
        ],
    );
    assert_eq!(up["duplicate"], false, "{up}");
    let (rows, corrections) = hub.track(b);
    assert_eq!(
        rows,
        vec![
            row(H26, "delivered", 1),
            row(H29, "withdrawn", 0),
            row(G0901, "queued", 0)
        ]
    );
    assert_eq!(
        corrections,
        vec![(
            "update".to_string(),
            "Bổ sung nơi nhận".to_string(),
            vec![format!("+{G0901}"), format!("-{H29}")]
        )]
    );
    let mut got = hub.inbox(G0901);
    got.sort();
    assert_eq!(got, vec![(0, b.to_string()), (2, b.to_string())]);
    assert_eq!(hub.inbox(H26), vec![(2, b.to_string())]);
    hub.ok(&hub.as_who(H26, &["status", b, "--code", "16", "--reason", "đã vào sổ"]));
    // A second, different update is an action of its own.
    let up2 = hub.json(G22, &["update", b, "--remove", G0901, "--reason", "Bớt nơi nhận"]);
    assert_eq!(up2["duplicate"], false);
    assert_ne!(up2["hub_document_id"], up["hub_document_id"]);
    assert_eq!(hub.track(b).1.len(), 2);
    // Nothing to change is a usage error.
    let none = hub.truc(&hub.as_who(G22, &["update", b, "--reason", "x"]));
    assert_eq!(none.status.code(), Some(2), "{}", text(&none));

    // Replace two old documents, each for its agencies: C1 for H26 only,
    // C2 for G09.01 only.
    let c1 = "000.00.00.G22,2026/11/23,43/VPCP";
    let c2 = "000.00.00.G22,2026/11/23,44/VPCP";
    hub.send(c1, &format!("{H26},{H29}"));
    hub.send(c2, &format!("{H26},{G0901}"));
    let new = "000.00.00.G22,2026/11/24,45/VPCP";
    let file = hub.path("thay-the.txt");
    std::fs::write(&file, "văn bản thay thế").unwrap();
    let r = hub.json(
        G22,
        &[
            "replace",
            &format!("{c1}:{H26}"),
            &format!("{c2}:{G0901}"),
            &file,
            "--id",
            new,
            "--reason",
            "Thay thế văn bản",
        ],
    );
    assert_eq!(r["duplicate"], false, "{r}");
    let (rows, corrections) = hub.track(c1);
    assert_eq!(rows, vec![row(H26, "withdrawn", 0), row(H29, "queued", 0)]);
    assert_eq!(
        corrections,
        vec![(
            "replace".to_string(),
            "Thay thế văn bản".to_string(),
            vec![H26.to_string()]
        )]
    );
    let (rows, corrections) = hub.track(c2);
    assert_eq!(rows, vec![row(H26, "queued", 0), row(G0901, "withdrawn", 0)]);
    assert_eq!(corrections[0].2, vec![G0901.to_string()]);
    let (rows, _) = hub.track(new);
    assert_eq!(rows, vec![row(H26, "queued", 0), row(G0901, "queued", 0)]);
    let mut got = hub.inbox(H26);
    got.sort();
    // (With the second update of B, which H26 stays a recipient of.)
    assert_eq!(got, vec![(0, c2.to_string()), (2, b.to_string()), (3, new.to_string())]);
}

#[test]
fn status_help_states_the_rules() {
    let o = Command::new(env!("CARGO_BIN_EXE_truc"))
        .args(["status", "--help"])
        .output()
        .unwrap();
    let help = text(&o);
    for rule in &truc_core::status_rules::RULES {
        let says: String = rule.says.split_whitespace().collect::<Vec<_>>().join(" ");
        let flat: String = help.split_whitespace().collect::<Vec<_>>().join(" ");
        assert!(
            flat.contains(&says),
            "truc status --help does not state {says:?}:\n{help}"
        );
    }
}
