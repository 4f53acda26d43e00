use thiserror::Error;

/// Why a domain value or a signed document was refused.
///
/// Messages are written for the agency's IT staff: they say what was wrong
/// and never include internal details.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CoreError {
    /// An agency code fits neither QCVN 102:2016 nor QĐ 20/2020.
    #[error("invalid agency code {0:?}: expected QCVN 102 (e.g. 000.00.00.G22) or QĐ 20 (e.g. G09.01) form")]
    InvalidAgencyCode(String),
    /// A principal URI or name is malformed.
    #[error("invalid principal {0:?}: expected urn:truc:<agency|operator|auditor|hub>:<name>")]
    InvalidPrincipal(String),
    /// A certificate does not name exactly one Truc principal.
    #[error("certificate does not name exactly one principal: {0}")]
    CertificatePrincipal(String),
    /// The header bytes are not a valid DocumentHeader or a field is out of range.
    #[error("malformed document header: {0}")]
    MalformedHeader(String),
    /// The signer's certificate chain did not verify.
    #[error("signer certificate rejected: {0}")]
    BadChain(String),
    /// The signature over the header bytes did not verify.
    #[error("signature does not verify over the header bytes with the signer's key")]
    BadSignature,
    /// The payload's size or SHA-256 differs from the signed header.
    #[error("payload does not match the signed header: {0}")]
    PayloadMismatch(String),
    /// Someone other than the calling agency signed or is named as sender.
    #[error("{0}")]
    SenderMismatch(String),
    /// The header's signing time is further ahead of the hub's clock than
    /// allowed.
    #[error(
        "signed_at_unix_ms {signed_at_unix_ms} is {ahead_ms} ms ahead of the hub's clock; at most {max_ms} ms is \
         allowed: check the signing machine's clock and sign again"
    )]
    SignedInFuture {
        /// The header's signing time, Unix ms.
        signed_at_unix_ms: i64,
        /// How far ahead of the hub's clock, ms.
        ahead_ms: i64,
        /// The skew allowed, ms.
        max_ms: u64,
    },
    /// A Merkle proof or signed tree head did not verify.
    #[error("proof does not verify: {0}")]
    BadProof(String),
    /// A key could not be used.
    #[error("bad key: {0}")]
    BadKey(String),
}

/// `e` and its sources, `: `-separated, each said once (libraries often
/// wrap the same words: "tcp connect error: tcp connect error: …"): what a
/// log line or a command's last words should say of an error.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(c) = cur {
        let t = c.to_string();
        if !parts.iter().any(|p| p == &t) {
            parts.push(t);
        }
        cur = c.source();
    }
    parts.join(": ")
}

#[cfg(test)]
mod chain_tests {
    #[test]
    fn a_chain_says_each_cause_once() {
        let io = std::io::Error::other("disk on fire");
        let outer = std::io::Error::other(io);
        assert_eq!(super::chain(&outer), "disk on fire");
        #[derive(Debug, thiserror::Error)]
        #[error("opening the store")]
        struct Open(#[source] std::io::Error);
        assert_eq!(
            super::chain(&Open(std::io::Error::other("no space left"))),
            "opening the store: no space left"
        );
    }
}
