//! Percent-decoding, for `grpc-message` (gRPC percent-encodes it on the
//! wire) and the console's query strings.

/// `s` with every `%XX` replaced by its byte; anything else (a lone `%`,
/// bad hex) kept as it is; invalid UTF-8 replaced.
pub(crate) fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_what_was_encoded_and_keeps_the_rest() {
        assert_eq!(
            super::decode("agency%20000.00.00.H29%20is%20suspended"),
            "agency 000.00.00.H29 is suspended"
        );
        assert_eq!(super::decode("100%"), "100%");
        assert_eq!(super::decode("%4"), "%4");
        assert_eq!(super::decode("a%41"), "aA");
        assert_eq!(super::decode("%zz"), "%zz");
        assert_eq!(super::decode("%C4%91%E1%BA%BFn"), "đến");
    }
}
