use super::*;
use crate::merkle::MemoryTree;
use ring::rand::SystemRandom;
use truc_proto::v1::ReceiptEvent;

fn signer() -> TreeHeadSigner {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    TreeHeadSigner::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn is_bad_proof<T: fmt::Debug>(r: Result<T, CoreError>) -> bool {
    matches!(r, Err(CoreError::BadProof(_)))
}

/// Base64 for the PEM test (standard alphabet, padded).
fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[test]
fn sign_and_verify_round_trip() {
    let s = signer();
    let spki = s.public_key_spki_der();
    assert_eq!(spki.len(), 44);
    assert_eq!(&spki[..12], &ED25519_SPKI_PREFIX);
    assert_eq!(s.key_id(), crate::sha256(&spki));

    let root = [7u8; 32];
    let sth = s.sign(42, &root, 1_700_000_000_000);
    assert_eq!(sth.signature.len(), 64);
    assert_eq!(sth.key_id, s.key_id().to_vec());

    let v = TreeHeadVerifier::from_spki_der(&spki).unwrap();
    assert_eq!(v, s.verifier());
    assert_eq!(v.key_id(), s.key_id());
    assert_eq!(v.public_key_spki_der(), spki);
    let head = v.verify(&sth).unwrap();
    assert_eq!(
        head,
        TreeHead {
            tree_size: 42,
            root_hash: root.to_vec(),
            time_unix_ms: 1_700_000_000_000
        }
    );

    // The empty tree, as signed before the first batch.
    let head = v.verify(&s.sign(0, &merkle::empty_root(), 1)).unwrap();
    assert_eq!(head.tree_size, 0);
}

#[test]
fn verifier_from_pem() {
    let s = signer();
    let b64 = base64(&s.public_key_spki_der());
    let pem = format!("-----BEGIN PUBLIC KEY-----\n{b64}\n-----END PUBLIC KEY-----\n");
    assert_eq!(TreeHeadVerifier::from_pem(&pem).unwrap(), s.verifier());
    let with_other = format!("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n{pem}");
    assert_eq!(TreeHeadVerifier::from_pem(&with_other).unwrap(), s.verifier());
    assert!(matches!(
        TreeHeadVerifier::from_pem("not pem"),
        Err(CoreError::BadKey(_))
    ));
    let rsa_like = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64(&[0x30; 44])
    );
    assert!(matches!(
        TreeHeadVerifier::from_pem(&rsa_like),
        Err(CoreError::BadKey(_))
    ));
}

#[test]
fn bad_keys_are_refused() {
    assert!(matches!(TreeHeadSigner::from_pkcs8(b"nope"), Err(CoreError::BadKey(_))));
    let spki = signer().public_key_spki_der();
    for bad in [&spki[..43], &[spki.as_slice(), &[0]].concat()[..], &spki[12..], b""] {
        assert!(matches!(
            TreeHeadVerifier::from_spki_der(bad),
            Err(CoreError::BadKey(_))
        ));
    }
    let mut other_alg = spki.clone();
    other_alg[8] = 0x71; // OID 1.3.101.113 (Ed448)
    assert!(TreeHeadVerifier::from_spki_der(&other_alg).is_err());
    // The message names the problem, not the bytes.
    let msg = TreeHeadSigner::from_pkcs8(&[0x30; 40]).unwrap_err().to_string();
    assert_eq!(msg, "bad key: the receipt key is not an Ed25519 PKCS#8 private key");
}

#[test]
fn tampering_is_detected() {
    let s = signer();
    let v = s.verifier();
    let sth = s.sign(9, &[1u8; 32], 5);
    for i in 0..sth.tree_head.len() {
        let mut t = sth.clone();
        t.tree_head[i] ^= 0x01;
        assert!(is_bad_proof(v.verify(&t)), "tree_head byte {i}");
    }
    for i in [0, 31, 32, 63] {
        let mut t = sth.clone();
        t.signature[i] ^= 0x80;
        assert!(is_bad_proof(v.verify(&t)), "signature byte {i}");
    }
    let mut t = sth.clone();
    t.signature.truncate(63);
    assert!(is_bad_proof(v.verify(&t)));
    let mut t = sth.clone();
    t.key_id[0] ^= 1;
    assert!(is_bad_proof(v.verify(&t)));
    let mut t = sth.clone();
    t.key_id.clear();
    assert!(is_bad_proof(v.verify(&t)));
}

#[test]
fn wrong_key_is_refused() {
    let (a, b) = (signer(), signer());
    let sth = a.sign(1, &[0u8; 32], 0);
    assert!(is_bad_proof(b.verifier().verify(&sth)));
    // Even when the key id is rewritten to the verifier's.
    let mut forged = sth.clone();
    forged.key_id = b.key_id().to_vec();
    assert!(is_bad_proof(b.verifier().verify(&forged)));
}

#[test]
fn signed_head_with_short_root_is_refused() {
    // Sign a malformed head with the real key: still refused.
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let s = TreeHeadSigner::from_pkcs8(pkcs8.as_ref()).unwrap();
    let tree_head = TreeHead {
        tree_size: 1,
        root_hash: vec![0; 31],
        time_unix_ms: 0,
    }
    .encode_to_vec();
    let sth = SignedTreeHead {
        signature: key.sign(&tree_head).as_ref().to_vec(),
        tree_head,
        key_id: s.key_id().to_vec(),
    };
    assert!(is_bad_proof(s.verifier().verify(&sth)));
}

fn receipt(index: u64) -> Receipt {
    Receipt {
        index,
        event: ReceiptEvent::Accepted as i32,
        time_unix_ms: 1_700_000_000_000 + index as i64,
        actor: "urn:truc:agency:000.00.00.G22".into(),
        from: "000.00.00.G22".into(),
        document_id: format!("000.00.00.G22,2018/09/20,{index}/VPCP-TTĐT"),
        hub_document_id: index,
        header_sha256: vec![index as u8; 32],
        recipient: "000.00.00.H29".into(),
        ..Default::default()
    }
}

fn proven(tree: &MemoryTree, s: &TreeHeadSigner, bytes: &[Vec<u8>], index: u64) -> ProvenReceipt {
    let size = tree.size();
    ProvenReceipt {
        receipt: bytes[index as usize].clone(),
        tree_head: Some(s.sign(size, &tree.root(), 99)),
        inclusion_proof: merkle::inclusion_proof(index, size, tree)
            .unwrap()
            .iter()
            .map(|h| h.to_vec())
            .collect(),
        leaf_index: index,
        tree_size: size,
    }
}

#[test]
fn proven_receipt_round_trip() {
    let s = signer();
    let v = s.verifier();
    let mut tree = MemoryTree::new();
    let bytes: Vec<Vec<u8>> = (0..13).map(|i| receipt(i).encode_to_vec()).collect();
    for b in &bytes {
        tree.push(b);
    }
    for index in 0..13 {
        let (r, head) = v.verify_proven_receipt(&proven(&tree, &s, &bytes, index)).unwrap();
        assert_eq!(r, receipt(index));
        assert_eq!(head.tree_size, 13);
        assert_eq!(head.root_hash, tree.root().to_vec());
    }
}

#[test]
fn bad_proven_receipts_are_refused() {
    let s = signer();
    let v = s.verifier();
    let mut tree = MemoryTree::new();
    let bytes: Vec<Vec<u8>> = (0..6).map(|i| receipt(i).encode_to_vec()).collect();
    for b in &bytes {
        tree.push(b);
    }
    let good = proven(&tree, &s, &bytes, 3);
    v.verify_proven_receipt(&good).unwrap();

    let mut p = good.clone();
    p.receipt = bytes[4].clone(); // another receipt, this one's proof
    assert!(is_bad_proof(v.verify_proven_receipt(&p)));

    let mut p = good.clone();
    let mut r = receipt(3);
    r.detail = "changed".into();
    p.receipt = r.encode_to_vec();
    assert!(is_bad_proof(v.verify_proven_receipt(&p)));

    let mut p = good.clone();
    p.inclusion_proof[0][0] ^= 1;
    assert!(is_bad_proof(v.verify_proven_receipt(&p)));

    let mut p = good.clone();
    p.inclusion_proof[1].pop();
    assert!(is_bad_proof(v.verify_proven_receipt(&p)));

    let mut p = good.clone();
    p.inclusion_proof.pop();
    assert!(is_bad_proof(v.verify_proven_receipt(&p)));

    let mut p = good.clone();
    p.tree_head = None;
    assert!(is_bad_proof(v.verify_proven_receipt(&p)));

    let mut p = good.clone();
    p.tree_head = Some(signer().sign(6, &tree.root(), 99));
    assert!(is_bad_proof(v.verify_proven_receipt(&p)));

    let mut p = good.clone();
    p.receipt = vec![0xff, 0xff, 0xff];
    assert!(is_bad_proof(v.verify_proven_receipt(&p)));

    // An honest tree head of an earlier size does not match the proof.
    let mut p = good.clone();
    p.tree_head = Some(s.sign(5, &merkle::root(5, &tree).unwrap(), 99));
    assert!(is_bad_proof(v.verify_proven_receipt(&p)));
    // The unsigned copies of the index and size must equal the signed ones;
    // a hub that predates them leaves both 0.
    let mut p = good.clone();
    p.leaf_index = 2;
    assert!(is_bad_proof(v.verify_proven_receipt(&p)));
    let mut p = good.clone();
    p.tree_size = 7;
    assert!(is_bad_proof(v.verify_proven_receipt(&p)));
    let mut p = good.clone();
    (p.leaf_index, p.tree_size) = (0, 0);
    v.verify_proven_receipt(&p).unwrap();
}
