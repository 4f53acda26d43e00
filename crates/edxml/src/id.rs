//! A document's own id as the axis writes it: `<sender code>,<yyyy/MM/dd>,<number>/<notation>`.
//!
//! The one place its agreement with the document's other fields is checked: an edXML
//! package ([`crate::MessageHeader::warnings`]) and the hub's acceptance of a signed header
//! both call [`document_id_warnings`]. Disagreements are warnings, not refusals: real
//! systems send such ids. (Whether the id must begin with the sender's code is the
//! caller's rule: the hub refuses that before it asks for warnings.)

use crate::{EdDate, Warning};

/// The three comma-separated parts of a DocumentId, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DocumentIdParts<'a> {
    /// The sender's agency code (edXML `From/OrganId`).
    pub sender: &'a str,
    /// The promulgation date, `yyyy/MM/dd` in the sender's local time.
    pub date: &'a str,
    /// `<number>/<notation>` (edXML `Code/CodeNumber` and `Code/CodeNotation`).
    pub number_notation: &'a str,
}

impl<'a> DocumentIdParts<'a> {
    /// Splits an id at its first two commas; `None` when it has fewer than two.
    pub fn split(document_id: &'a str) -> Option<Self> {
        let mut parts = document_id.splitn(3, ',');
        Some(DocumentIdParts {
            sender: parts.next()?,
            date: parts.next()?,
            number_notation: parts.next()?,
        })
    }
}

/// Builds the id `<sender>,<yyyy/MM/dd>,<number>/<notation>` from its parts.
pub fn document_id(sender: &str, promulgated: jiff::civil::Date, number: &str, notation: &str) -> String {
    format!("{sender},{},{number}/{notation}", EdDate::Date(promulgated))
}

/// Checks a document's own id against the document's other fields: the sender's code,
/// the number and notation (`code`, `"<number>/<notation>"`, when the document states
/// them) and the promulgation date (when stated); an impossible id or promulgation date
/// (`2026/02/30`). Each warning names the element `DocumentId` or `PromulgationDate`;
/// callers prefix or rename them as their format names fields.
pub fn document_id_warnings(
    document_id: &str,
    sender: &str,
    code: Option<&str>,
    promulgation_date: Option<&EdDate>,
) -> Vec<Warning> {
    let mut out = Vec::new();
    let mut warn = |element: &str, reason: String| {
        out.push(Warning {
            element: element.into(),
            reason,
        })
    };
    match DocumentIdParts::split(document_id) {
        None => warn(
            "DocumentId",
            "not of the form <sender code>,<yyyy/MM/dd>,<number>/<notation>".into(),
        ),
        Some(parts) => {
            if parts.sender != sender {
                warn(
                    "DocumentId",
                    format!("begins with {:?}, not the sender's code {sender:?}", parts.sender),
                );
            }
            let id_date = EdDate::parse(parts.date);
            if !id_date.is_standard() {
                warn(
                    "DocumentId",
                    format!("date {:?} is not a valid yyyy/MM/dd date", parts.date),
                );
            }
            if let Some(d) = promulgation_date {
                if id_date.date().is_some() && d.date().is_some() && id_date.date() != d.date() {
                    warn(
                        "DocumentId",
                        format!("date {} differs from the promulgation date {d}", parts.date),
                    );
                }
            }
            if let Some(expect) = code {
                if parts.number_notation != expect {
                    warn(
                        "DocumentId",
                        format!(
                            "number/notation {:?} differs from the document's number and notation {expect:?}",
                            parts.number_notation
                        ),
                    );
                }
            }
        }
    }
    if let Some(d) = promulgation_date {
        if !d.is_standard() {
            warn(
                "PromulgationDate",
                format!("{:?} is not a valid yyyy/MM/dd date", d.to_string()),
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reasons(w: &[Warning]) -> Vec<String> {
        w.iter().map(|w| format!("{}: {}", w.element, w.reason)).collect()
    }

    #[test]
    fn an_agreeing_id_has_no_warnings() {
        let d = EdDate::parse("2026/12/06");
        let w = document_id_warnings("G22,2026/12/06,12/VPCP-TTĐT", "G22", Some("12/VPCP-TTĐT"), Some(&d));
        assert!(w.is_empty(), "{:?}", reasons(&w));
        assert_eq!(
            document_id("G22", d.date().unwrap(), "12", "VPCP-TTĐT"),
            "G22,2026/12/06,12/VPCP-TTĐT"
        );
    }

    #[test]
    fn each_disagreement_is_named() {
        let d = EdDate::parse("2026/12/05");
        let w = reasons(&document_id_warnings(
            "H26,2026/12/06,13/X",
            "G22",
            Some("12/X"),
            Some(&d),
        ));
        assert_eq!(w.len(), 3, "{w:#?}");
        assert!(w[0].contains("not the sender's code \"G22\""), "{w:#?}");
        assert!(w[1].contains("differs from the promulgation date 2026/12/05"), "{w:#?}");
        assert!(w[2].contains("\"13/X\" differs"), "{w:#?}");
        let w = reasons(&document_id_warnings(
            "G22,2026/02/30,1/X",
            "G22",
            None,
            Some(&EdDate::parse("2026/02/30")),
        ));
        assert_eq!(w.len(), 2, "{w:#?}");
        assert!(
            w[0].starts_with("DocumentId: date \"2026/02/30\" is not a valid"),
            "{w:#?}"
        );
        assert!(w[1].starts_with("PromulgationDate: "), "{w:#?}");
        let w = reasons(&document_id_warnings("d1", "G22", None, None));
        assert_eq!(
            w,
            ["DocumentId: not of the form <sender code>,<yyyy/MM/dd>,<number>/<notation>"]
        );
    }
}
