//! c2sp.org/tlog-witness and c2sp.org/tlog-proof, each example with its
//! source:
//!
//! - [TW] C2SP/C2SP `tlog-witness.md` (commit 055270b5928827a49ee8…): the
//!   example `add-checkpoint` request body and the example response body.
//! - [TP] C2SP/C2SP `tlog-proof.md` (commit 0065ea5b716154a2dd48…): the
//!   example proof (its signature lines are elided with `[...]` in the
//!   specification, so its note is kept as text, not opened).
//!
//! The witness's decisions are checked with real keys and trees: every
//! refusal of the specification, each with its status.

use super::checkpoint::Checkpoint;
use super::cosignature::{self, Cosigner};
use super::note::{Note, NoteSigner, NoteVerifier};
use super::proof::TlogProof;
use super::witness::*;
use super::{b64, unb64};
use crate::merkle::{self, MemoryTree};

/// [TW] the example request body.
const REQUEST: &str = "old 20852014
PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=
jrJZDmY8Y7SyJE0MWLpLozkIVMSMZcD5kvuKxPC3swk=
5+pKlUdi2LeF/BcMHBn+Ku6yhPGNCswZZD1X/6QgPd8=
/6WVhPs2CwSsb5rYBH5cjHV/wSmA79abXAwhXw3Kj/0=

example.com/behind-the-sofa
20852163
CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=

— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=
— example.com/behind-the-sofa opLqBQsREYCgu6xQkYQwJr9fo45a62DN9EdmHXnZdXNqlcVGlCum2Wks+49/V6267UEjw6QUXTS5Rovnzv++qbSzm9Q=
";

/// [TW] the example response body.
const RESPONSE: &str = "— witness.example/w1 CMp+6LWBU0anHGH5aNDTJkH/gj79sG+T6+iP2ThYN5krrDJbR1HDnucjL39QsZTSvVjyQLrdk3DXDqI5G2HgLatVs0pWh6Up69HVOw==
— witness.example/w1 I7rEps0pvK2UqkS2gSpVUDhrhVtQV9lgF6pRrWAvjJHjyWpW7VcE3SiOlVlbQNt64vWhO+DlkL0+UfzuOBMh9ChdMkP1vi/lCAsmlw==
— witness.example/w2 AWui8Sk55XjYLOijihBjhqEH6nS1ndDymE0a+6idX7pLcnoB+dhnz0854aLZgrrKbYKA7nC3HNJhm/kWl7oJlqU3rXXvpysAdyP3wQ==
";

/// [TP] the example proof.
const PROOF: &str = "c2sp.org/tlog-proof@v1
extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ
index 73894
gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=
B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=
EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=
RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=
AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=

example.com/fancylog
109482
sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=

— example.com/fancylog hI2DJw[...]1roloI=
— witness1.example mJirIklj[...]qY9v2B/5bg==
— witness2.example TnKKVHLX[...]xwYwrSjgow==
— witness3.example S4X82uH5[...]3oEcROGLFQ==
";

#[test]
fn the_specifications_example_request_parses_and_prints_back() {
    let req = AddCheckpoint::parse(REQUEST.as_bytes()).unwrap();
    assert_eq!(req.old_size, 20852014);
    assert_eq!(req.proof.len(), 4);
    assert_eq!(b64(&req.proof[0]), "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=");
    let note = Note::parse(req.note.as_bytes()).unwrap();
    assert_eq!(note.signatures.len(), 2);
    let cp = Checkpoint::parse_text(&note.text).unwrap();
    assert_eq!((cp.origin.as_str(), cp.size), ("example.com/behind-the-sofa", 20852163));
    assert_eq!(req.body(), REQUEST);
}

#[test]
fn the_specifications_example_response_parses() {
    let sigs = parse_cosignature_body(RESPONSE).unwrap();
    let names: Vec<&str> = sigs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        ["witness.example/w1", "witness.example/w1", "witness.example/w2"]
    );
    // Two keys of one witness name (the answer may carry a cosignature of
    // each of the witness's keys), each line as long as a cosignature: 8
    // bytes of time and 64 of signature after the key ID. (The example's
    // bytes are illustrative: the first line's "time" has its top bit set,
    // beyond the 2^63 - 1 that cosignature/v1 allows, and is refused so.)
    assert_ne!(sigs[0].key_id, sigs[1].key_id);
    for s in &sigs {
        assert_eq!(s.signature.len(), 72);
    }
    assert!(cosignature::timestamp(&sigs[0]).is_err());
    assert_eq!(cosignature_body(&sigs), RESPONSE);
    for bad in ["", "\n", "— w1 AAAA", "not a signature\n"] {
        assert!(parse_cosignature_body(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn sizes_in_409_answers() {
    assert_eq!(parse_size_body(&size_body(20852163)), Some(20852163));
    assert_eq!(parse_size_body("0\n"), Some(0));
    for bad in ["12", "012\n", "\n", "-1\n", "1 2\n", "18446744073709551616\n"] {
        assert_eq!(parse_size_body(bad), None, "{bad:?}");
    }
}

#[test]
fn malformed_requests_are_refused() {
    let note = REQUEST.split_once("\n\n").unwrap().1;
    let hash = "PlRNCrwHpqhGrupue0L7gxbjbMiKA9temvuZZDDpkaw=\n";
    for bad in [
        note.to_string(),
        format!("old 5\n{note}"),
        format!("old 05\n\n{note}"),
        format!("old -1\n\n{note}"),
        format!("new 5\n\n{note}"),
        format!("old 5\nnot base64\n\n{note}"),
        format!("old 5\nAAAA\n\n{note}"),
        format!("old 5\n{}\n{note}", hash.repeat(64)),
    ] {
        assert!(AddCheckpoint::parse(bad.as_bytes()).is_err(), "{bad:?}");
    }
    AddCheckpoint::parse(format!("old 5\n{}\n{note}", hash.repeat(63)).as_bytes()).unwrap();
    assert!(AddCheckpoint::parse(&vec![b'a'; MAX_REQUEST_BYTES + 1]).is_err());
}

/// A log of `n` leaves with a prefix, its signer, and signed checkpoints.
struct Log {
    tree: MemoryTree,
    signer: NoteSigner,
}

impl Log {
    fn new(prefix: &str, n: u64) -> Log {
        let mut tree = MemoryTree::new();
        for i in 0..n {
            tree.push(format!("{prefix} {i}").as_bytes());
        }
        Log {
            tree,
            signer: NoteSigner::from_seed("h49.truc/receipts", &[7; 32]).unwrap(),
        }
    }

    fn note(&self, size: u64) -> String {
        let root = merkle::root(size, &self.tree).unwrap();
        Checkpoint::new("h49.truc/receipts", size, root)
            .sign(&self.signer)
            .unwrap()
    }

    fn request(&self, old: u64, size: u64) -> AddCheckpoint {
        AddCheckpoint {
            old_size: old,
            proof: merkle::consistency_proof(old, size, &self.tree).unwrap(),
            note: self.note(size),
        }
    }

    fn witnessed(&self, size: u64) -> Option<Witnessed> {
        Some(Witnessed {
            size,
            root: merkle::root(size, &self.tree).unwrap(),
        })
    }
}

#[test]
fn a_witness_cosigns_what_extends_what_it_cosigned_and_refuses_the_rest() {
    let log = Log::new("leaf", 20);
    let key = log.signer.verifier();
    let known = |o: &str| (o == "h49.truc/receipts").then_some(&key);

    // First contact: old 0, no proof, taken on trust.
    let ok = judge(&log.request(0, 5), known, None).unwrap();
    assert_eq!(
        (ok.checkpoint.size, ok.text.as_str()),
        (5, Note::parse(log.note(5).as_bytes()).unwrap().text.as_str())
    );
    // The cosignature on it verifies as part of the note.
    let witness = Cosigner::from_seed("national.truc/witness", &[9; 32]).unwrap();
    let line = witness.cosign(&ok.text, 1_700_000_000).unwrap();
    let cosigned = format!("{}{}", log.note(5), line.line());
    Note::parse(cosigned.as_bytes())
        .unwrap()
        .verify(&[&witness.verifier()])
        .unwrap();

    // Growth proven from the size cosigned; the same checkpoint again.
    judge(&log.request(5, 12), known, log.witnessed(5)).unwrap();
    judge(&log.request(12, 12), known, log.witnessed(12)).unwrap();

    // 409 with the size cosigned when old is not it (a client that
    // starts from 0 learns it so).
    let r = judge(&log.request(0, 12), known, log.witnessed(5)).unwrap_err();
    assert_eq!((r.status(), r.clone()), (409, Refusal::Stale { old: 0, witnessed: 5 }));
    assert!(!r.is_conflict());
    let r = judge(&log.request(3, 12), known, log.witnessed(5)).unwrap_err();
    assert_eq!(r, Refusal::Stale { old: 3, witnessed: 5 });
    // 400: old beyond the checkpoint.
    let mut req = log.request(5, 5);
    req.old_size = 6;
    assert_eq!(judge(&req, known, log.witnessed(5)).unwrap_err().status(), 400);
    // 404: a log this witness does not know; 403: not signed by its key.
    let r = judge(&log.request(0, 5), |_| None, None).unwrap_err();
    assert_eq!((r.status(), r.to_string().contains("h49.truc/receipts")), (404, true));
    let other = NoteVerifier::new("h49.truc/receipts", 0x01, &[3; 32]).unwrap();
    let r = judge(&log.request(0, 5), |_| Some(&other), None).unwrap_err();
    assert_eq!(r.status(), 403);
    let mut tampered = log.request(5, 12);
    tampered.note = tampered.note.replacen("\n12\n", "\n13\n", 1);
    assert_eq!(judge(&tampered, known, log.witnessed(5)).unwrap_err().status(), 403);
    // 400: garbage where the note should be.
    let mut garbage = log.request(0, 5);
    garbage.note = "no note\n".into();
    assert_eq!(judge(&garbage, known, None).unwrap_err().status(), 400);
}

#[test]
fn a_fork_and_a_rewritten_history_are_conflicts() {
    let log = Log::new("leaf", 20);
    // The same log key, but leaves from 8 on differ: a history rewritten
    // from a copy of the log at size 8.
    let mut fork = Log::new("leaf", 8);
    for i in 8..20 {
        fork.tree.push(format!("forked {i}").as_bytes());
    }
    let key = log.signer.verifier();
    let known = |_: &str| Some(&key);

    // Two different trees of size 12: 409, a conflict.
    let r = judge(&fork.request(12, 12), known, log.witnessed(12)).unwrap_err();
    assert!(matches!(r, Refusal::Fork { size: 12, .. }), "{r:?}");
    assert_eq!((r.status(), r.is_conflict()), (409, true));
    // A larger forked tree, its proof from size 12 of the fork: 422, a
    // conflict.
    let r = judge(&fork.request(12, 16), known, log.witnessed(12)).unwrap_err();
    assert!(matches!(r, Refusal::BadProof { old: 12, size: 16, .. }), "{r:?}");
    assert_eq!((r.status(), r.is_conflict()), (422, true));
    // A proof that is simply wrong is refused alike.
    let mut req = log.request(12, 16);
    req.proof.pop();
    assert_eq!(judge(&req, known, log.witnessed(12)).unwrap_err().status(), 422);
    // Still fine before the fork point.
    judge(&fork.request(4, 8), known, log.witnessed(4)).unwrap();
}

#[test]
fn the_specifications_example_proof_parses_and_prints_back() {
    let p = TlogProof::parse(PROOF).unwrap();
    assert_eq!(p.index, 73894);
    assert_eq!(p.proof.len(), 5);
    assert_eq!(b64(&p.proof[4]), "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=");
    assert!(p
        .extra
        .as_deref()
        .unwrap()
        .starts_with(b"age-v1.2.1-darwin-arm64.tar.gz"));
    assert!(p.checkpoint.starts_with("example.com/fancylog\n109482\n"));
    assert_eq!(p.to_text(), PROOF);
    let no_extra = PROOF.replacen("extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n", "", 1);
    assert_eq!(TlogProof::parse(&no_extra).unwrap().extra, None);
    for bad in [
        PROOF.replacen("c2sp.org/tlog-proof@v1", "c2sp.org/tlog-proof@v2", 1),
        PROOF.replacen("index 73894", "index 073894", 1),
        PROOF.replacen("index 73894\n", "", 1),
        PROOF.replacen("extra YWdl", "extra !Wdl", 1),
        PROOF.replacen("gSKyXoYZ", "gSKy", 1),
        PROOF.replacen("\n\n", "\n", 1),
    ] {
        assert!(TlogProof::parse(&bad).is_err(), "{bad}");
    }
}

#[test]
fn a_proof_of_our_own_verifies_against_its_checkpoint() {
    let log = Log::new("receipt", 9);
    let p = TlogProof {
        extra: Some(b"receipt 6".to_vec()),
        index: 6,
        proof: merkle::inclusion_proof(6, 9, &log.tree).unwrap(),
        checkpoint: log.note(9),
    };
    let back = TlogProof::parse(&p.to_text()).unwrap();
    assert_eq!(back, p);
    let (cp, _) = Checkpoint::open(back.checkpoint.as_bytes(), &log.signer.verifier()).unwrap();
    let leaf = merkle::leaf_hash(back.extra.as_deref().unwrap());
    merkle::verify_inclusion(&leaf, back.index, cp.size, &back.proof, &cp.root).unwrap();
    assert!(unb64(&b64(&leaf)).is_some());
}
