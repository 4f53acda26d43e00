//! Test vectors, each with its source:
//!
//! - [GO] golang.org/x/mod, `sumdb/note/note_test.go` (github.com/golang/mod,
//!   commit 02c991387e35f9e4c0a9b7ce137717055f8d716d): the PeterNeumann
//!   signer and verifier keys, the note it signs, the EnochRoot key and
//!   signature, and the malformed notes that must be refused.
//! - [TD] github.com/transparency-dev/formats, `note/note_cosigv1_test.go`
//!   (commit 091ce41666c09683aa9350785e572be27f0c026d): verifier keys of
//!   types 0x01 and 0x04 and their key IDs, refused keys, and a
//!   cosignature whose timestamp is 1727964367.
//! - [CP] C2SP/C2SP `tlog-checkpoint.md` (commit 2793893976c8…): the
//!   example checkpoint `example.com/behind-the-sofa`.
//! - [CS] C2SP/C2SP `tlog-cosignature.md` (commit 01194db11950…): the same
//!   checkpoint with a witness cosignature, and the signed message for time
//!   1679315147 written out.
//!
//! The specifications publish no private keys and the example notes'
//! public keys are not given, so their signatures are parsed (key IDs,
//! timestamps, lengths), not verified; signing and verifying are checked
//! byte for byte against [GO].

use super::checkpoint::Checkpoint;
use super::cosignature::{self, Cosigner};
use super::note::*;
use super::{b64, unb64};

const PETER_SKEY: &str = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const PETER_VKEY: &str = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const ENOCH_VKEY: &str = "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
const TEXT: &str =
    "If you think cryptography is the answer to your problem,\nthen you don't know what your problem is.\n";
const PETER_SIG: &str =
    "— PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
const ENOCH_SIG: &str =
    "— EnochRoot rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

/// [CP] and [CS]: the example checkpoint and its signature lines.
const SOFA_TEXT: &str = "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n";
const SOFA_LOG_SIG: &str =
    "— example.com/behind-the-sofa Az3grlgtzPICa5OS8npVmf1Myq/5IZniMp+ZJurmRDeOoRDe4URYN7u5/Zhcyv2q1gGzGku9nTo+zyWE+xeMcTOAYQ8=\n";
const SOFA_WITNESS_SIG: &str =
    "— witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dlrDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n";

/// The Ed25519 seed inside a Go signer key, `PRIVATE+KEY+name+id+base64(0x01 || seed)`.
fn seed_of(skey: &str) -> (String, Vec<u8>) {
    let parts: Vec<&str> = skey.splitn(5, '+').collect();
    assert_eq!(&parts[..2], ["PRIVATE", "KEY"]);
    let raw = unb64(parts[4]).unwrap();
    assert_eq!(raw[0], TYPE_ED25519);
    (parts[2].to_string(), raw[1..].to_vec())
}

fn peter() -> NoteSigner {
    let (name, seed) = seed_of(PETER_SKEY);
    NoteSigner::from_seed(&name, &seed).unwrap()
}

#[test]
fn go_signer_key_gives_go_verifier_key_and_note() {
    // [GO] TestSign: the exact note; TestNewVerifier: the verifier key.
    let s = peter();
    assert_eq!(s.key_id(), 0xc74f20a3);
    assert_eq!(s.verifier().vkey(), PETER_VKEY);
    assert_eq!(s.sign_note(TEXT).unwrap(), format!("{TEXT}\n{PETER_SIG}"));
    let v = NoteVerifier::from_vkey(PETER_VKEY).unwrap();
    assert_eq!(v, s.verifier());
    assert_eq!(
        (v.name(), v.key_id(), v.signature_type()),
        ("PeterNeumann", 0xc74f20a3, TYPE_ED25519)
    );
}

#[test]
fn go_notes_open_with_known_keys_and_ignore_unknown_ones() {
    // [GO] TestOpen.
    let peter = NoteVerifier::from_vkey(PETER_VKEY).unwrap();
    let enoch = NoteVerifier::from_vkey(ENOCH_VKEY).unwrap();
    let both = format!("{TEXT}\n{PETER_SIG}{ENOCH_SIG}");
    let note = Note::parse(both.as_bytes()).unwrap();
    assert_eq!(note.text, TEXT);
    assert_eq!(note.to_text(), both, "parse and print round trip");
    assert_eq!(note.verify(&[&peter]).unwrap(), vec![0]);
    assert_eq!(note.verify(&[&peter, &enoch]).unwrap(), vec![0, 1]);
    assert_eq!(note.verify(&[&enoch]).unwrap(), vec![0]);
    assert_eq!(
        note.verify(&[]).unwrap_err().to_string(),
        "the note is not signed by any known key"
    );
    let note_enoch_only = Note::parse(format!("{TEXT}\n{ENOCH_SIG}").as_bytes()).unwrap();
    assert_eq!(
        note_enoch_only.verify(&[&peter]).unwrap_err(),
        NoteError::NotSigned("PeterNeumann+c74f20a3".into())
    );
    // [GO] "Invalid signature": a known key's signature that fails rejects the note.
    let bad = format!("{TEXT}\n{}ABCD{}", &PETER_SIG[..60], &PETER_SIG[60..]);
    assert_eq!(
        Note::parse(bad.as_bytes()).unwrap().verify(&[&peter]).unwrap_err(),
        NoteError::BadSignature("PeterNeumann+c74f20a3".into())
    );
    // [GO] too many signatures.
    let many = format!("{TEXT}\n{}", PETER_SIG.repeat(101));
    assert!(matches!(Note::parse(many.as_bytes()), Err(NoteError::Malformed(_))));
    Note::parse(format!("{TEXT}\n{}", PETER_SIG.repeat(100)).as_bytes()).unwrap();
}

#[test]
fn go_malformed_notes_are_refused() {
    // [GO] TestOpen "Invalid encoded message syntax".
    let bad = [
        TEXT.to_string(),
        format!("{TEXT}\n"),
        format!("{TEXT}\n{}", &PETER_SIG[..PETER_SIG.len() - 1]),
        format!("\x01{TEXT}\n{PETER_SIG}"),
        format!("{TEXT}\n— Bad Name x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="),
        format!("{TEXT}\n{PETER_SIG}Unexpected line.\n"),
    ];
    for b in &bad {
        assert!(
            matches!(Note::parse(b.as_bytes()), Err(NoteError::Malformed(_))),
            "{b:?}"
        );
    }
    let mut not_utf8 = format!("{TEXT}\n{PETER_SIG}").into_bytes();
    not_utf8.insert(0, 0xff);
    assert!(matches!(Note::parse(&not_utf8), Err(NoteError::Malformed(_))));
}

#[test]
fn go_verifier_key_manglings_are_refused() {
    // [GO] TestNewVerifier: every proper substring and every byte changed.
    let b = PETER_VKEY.as_bytes();
    for i in 0..=b.len() {
        for j in i + 1..=b.len() {
            if i != 0 || j != b.len() {
                let s = std::str::from_utf8(&b[i..j]).unwrap();
                assert!(NoteVerifier::from_vkey(s).is_err(), "{s:?}");
            }
        }
    }
    let mut m = b.to_vec();
    for i in 0..m.len() {
        m[i] += 1;
        if let Ok(s) = std::str::from_utf8(&m) {
            assert!(NoteVerifier::from_vkey(s).is_err(), "{s:?}");
        }
        m[i] -= 1;
    }
    // Wrong key length and unknown type, each with its key ID adjusted.
    for s in [
        "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==",
        "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    ] {
        assert!(NoteVerifier::from_vkey(s).is_err(), "{s}");
    }
}

#[test]
fn transparency_dev_verifier_keys() {
    // [TD] TestCoSigV1NewVerifier: a type 0x01 key (its base64 holds a '+')
    // and a native type 0x04 cosigner key, with their key IDs.
    let v = NoteVerifier::from_vkey("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6").unwrap();
    assert_eq!((v.key_id(), v.signature_type()), (0x7997405c, TYPE_ED25519));
    let w = NoteVerifier::from_vkey("remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2").unwrap();
    assert_eq!((w.key_id(), w.signature_type()), (0xda77ade7, TYPE_COSIGNATURE_V1));
    assert_eq!(
        w.vkey(),
        "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2"
    );
    for bad in [
        "bananas.sigstore.dev+12344556",
        "rekor.sigstore.dev+12345678+THIS_IS_NOT_BASE64!",
        "rekor.sigstore.dev+12345678+AwEB",
        "TEST+00000000+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
        "TEST+NOT_A_NUMBER+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
    ] {
        assert!(NoteVerifier::from_vkey(bad).is_err(), "{bad}");
    }
}

#[test]
fn transparency_dev_cosignature_timestamp() {
    // [TD] TestCosignatureTimestamp: a cosignature line's time; a plain
    // Ed25519 signature (no timestamp) is not a cosignature.
    let sig = |b64: &str| {
        let raw = unb64(b64).unwrap();
        NoteSignature {
            name: "w".into(),
            key_id: u32::from_be_bytes(raw[..4].try_into().unwrap()),
            signature: raw[4..].to_vec(),
        }
    };
    let ok =
        sig("ZGhGuQAAAABm/qTPeyKXD+R2rzyQsxPiP8mXum7qq/iF0u4vanlqJyocWODBt97w9uL+8qT7S5gxEHWWOworDcFiEBYJXORmnFBOBA==");
    assert_eq!(cosignature::timestamp(&ok).unwrap(), 1727964367);
    let plain = sig("eQjRQm6eSKzFoiYalgwCPXu2y3ijtg68is9M46JKxuZB+dRfTmeQeDBoXnvxZx2ugnkyV+MUMLXpWs1hPb/W/4xkNQY=");
    assert!(cosignature::timestamp(&plain).is_err());
}

#[test]
fn the_specifications_example_checkpoint_and_cosignature() {
    // [CP] the checkpoint text; [CS] the cosigned note and the message.
    let cp = Checkpoint::parse_text(SOFA_TEXT).unwrap();
    assert_eq!((cp.origin.as_str(), cp.size), ("example.com/behind-the-sofa", 20852163));
    assert!(cp.extensions.is_empty());
    assert_eq!(cp.text(), SOFA_TEXT);
    let note = Note::parse(format!("{SOFA_TEXT}\n{SOFA_LOG_SIG}{SOFA_WITNESS_SIG}").as_bytes()).unwrap();
    assert_eq!(note.text, SOFA_TEXT);
    let [log, witness] = note.signatures.as_slice() else {
        panic!("two signature lines")
    };
    assert_eq!(
        (log.name.as_str(), log.key_id, log.signature.len()),
        ("example.com/behind-the-sofa", 0x033de0ae, 64)
    );
    assert_eq!(
        (witness.name.as_str(), witness.key_id),
        ("witness.example.com/w1", 0x8d66cf3f)
    );
    let t = cosignature::timestamp(witness).unwrap();
    assert_eq!(t, 1679315147);
    assert_eq!(
        String::from_utf8(cosignature::message(t, &note.text)).unwrap(),
        "cosignature/v1\ntime 1679315147\nexample.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n"
    );
}

#[test]
fn checkpoints_round_trip_and_bad_ones_are_refused() {
    let root = crate::sha256(b"root");
    let mut cp = Checkpoint::new("h49.truc/receipts", 7, root);
    assert_eq!(cp.text(), format!("h49.truc/receipts\n7\n{}\n", b64(&root)));
    assert_eq!(Checkpoint::parse_text(&cp.text()).unwrap(), cp);
    cp.extensions.push("ext one".into());
    assert_eq!(Checkpoint::parse_text(&cp.text()).unwrap(), cp);
    let r = b64(&root);
    for bad in [
        format!("o\n7\n{r}"),
        format!("\n7\n{r}\n"),
        format!("o\n07\n{r}\n"),
        format!("o\n-7\n{r}\n"),
        format!("o\n\n{r}\n"),
        format!("o\n18446744073709551616\n{r}\n"),
        "o\n7\nAAAA\n".to_string(),
        format!("o\n7\n{}\n", &r[..r.len() - 1]),
        format!("o\n7\n{r}\n\n"),
        "o\n7\n".to_string(),
    ] {
        assert!(Checkpoint::parse_text(&bad).is_err(), "{bad:?}");
    }
    assert!(Checkpoint::parse_text(&format!("o\n0\n{r}\n")).is_ok());
}

#[test]
fn a_signed_checkpoint_opens_and_a_tampered_one_does_not() {
    let (_, seed) = seed_of(PETER_SKEY);
    let log = NoteSigner::from_seed("h49.truc/receipts", &seed).unwrap();
    let cp = Checkpoint::new("h49.truc/receipts", 42, crate::sha256(b"x"));
    let note = cp.sign(&log).unwrap();
    let (opened, _) = Checkpoint::open(note.as_bytes(), &log.verifier()).unwrap();
    assert_eq!(opened, cp);
    // Another size, another root, another origin: each refused.
    let tampered = [
        note.replacen("\n42\n", "\n43\n", 1),
        note.replacen(&b64(&cp.root), &b64(&crate::sha256(b"y")), 1),
    ];
    for t in &tampered {
        assert_eq!(
            Checkpoint::open(t.as_bytes(), &log.verifier()).unwrap_err(),
            NoteError::BadSignature(log.verifier().key())
        );
    }
    let other = NoteSigner::from_seed("g12.truc/receipts", &seed).unwrap();
    let e = Checkpoint::open(cp.sign(&other).unwrap().as_bytes(), &log.verifier()).unwrap_err();
    assert!(matches!(e, NoteError::NotSigned(_)), "{e}");
    // A key named otherwise than the origin signs only notes of its name.
    let misnamed = Checkpoint::new("g12.truc/receipts", 42, cp.root).sign(&log).unwrap();
    assert!(Checkpoint::open(misnamed.as_bytes(), &log.verifier())
        .unwrap_err()
        .to_string()
        .contains("origin"));
}

#[test]
fn cosignatures_verify_and_cover_time_and_text() {
    let (_, seed) = seed_of(PETER_SKEY);
    let log = NoteSigner::from_seed("h49.truc/receipts", &seed).unwrap();
    let witness = Cosigner::from_seed("national.truc/witness", &[7u8; 32]).unwrap();
    let cp = Checkpoint::new("h49.truc/receipts", 42, crate::sha256(b"x"));
    let mut note = Note::parse(cp.sign(&log).unwrap().as_bytes()).unwrap();
    let cosig = witness.cosign(&note.text, 1_700_000_000).unwrap();
    assert_eq!(cosig.signature.len(), 8 + 64);
    assert_eq!(cosignature::timestamp(&cosig).unwrap(), 1_700_000_000);
    note.signatures.push(cosig.clone());
    let text = note.to_text();
    let opened = Note::parse(text.as_bytes()).unwrap();
    let (lv, wv) = (log.verifier(), witness.verifier());
    assert_eq!(opened.verify(&[&lv, &wv]).unwrap(), vec![0, 1]);
    assert_eq!(wv.vkey(), NoteVerifier::from_vkey(&wv.vkey()).unwrap().vkey());
    // Its key ID is of type 0x04: a type 0x01 verifier of the same key
    // does not know it, and a cosignature is no plain note signature.
    let plain = NoteVerifier::new(wv.name(), TYPE_ED25519, &wv.public_key).unwrap();
    assert_ne!(plain.key_id(), wv.key_id());
    assert!(matches!(opened.verify(&[&plain]), Err(NoteError::NotSigned(_))));
    // Another time in the line, or another text: refused.
    let mut moved = cosig.clone();
    moved.signature[7] ^= 1;
    let mut n = Note::parse(text.as_bytes()).unwrap();
    n.signatures[1] = moved;
    assert_eq!(n.verify(&[&wv]).unwrap_err(), NoteError::BadSignature(wv.key()));
    let mut n = Note::parse(text.as_bytes()).unwrap();
    n.text = n.text.replacen("\n42\n", "\n41\n", 1);
    assert_eq!(n.verify(&[&wv]).unwrap_err(), NoteError::BadSignature(wv.key()));
    assert!(witness.cosign(&note.text, u64::MAX).is_err());
}

#[test]
fn a_tree_head_signature_is_no_note_signature() {
    // The hub signs protobuf TreeHead bytes and checkpoint notes with the
    // same Ed25519 key: no TreeHead it signs is a note text (its root hash
    // field starts with the control byte 0x12), so neither signature can
    // stand for the other.
    use prost::Message;
    let bytes = truc_proto::v1::TreeHead {
        tree_size: u64::from(b'a'),
        root_hash: vec![b'a'; 32],
        time_unix_ms: 0x61,
    }
    .encode_to_vec();
    let as_text = String::from_utf8(bytes.clone());
    assert!(as_text.map_or(true, |t| check_text(&t).is_err()), "{bytes:?}");
    let mut note_bytes = bytes;
    note_bytes.extend_from_slice(format!("\n\n{PETER_SIG}").as_bytes());
    assert!(Note::parse(&note_bytes).is_err());
}
