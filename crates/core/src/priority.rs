//! Priorities (độ khẩn) by name, as people and scripts write them.

use truc_proto::v1::Priority;

use crate::CoreError;

/// A priority from its name: Vietnamese without marks (`thuong`, `khan`,
/// `thuong-khan`, `hoa-toc`, `hoa-toc-hen-gio`), English (`normal`,
/// `urgent`, `very-urgent`, `express`, `timed-express`) or its number
/// `0..=4`; case, `_` and spaces do not matter.
pub fn parse(s: &str) -> Result<Priority, CoreError> {
    Ok(match s.to_ascii_lowercase().replace(['_', ' '], "-").as_str() {
        "0" | "thuong" | "normal" => Priority::Normal,
        "1" | "khan" | "urgent" => Priority::Urgent,
        "2" | "thuong-khan" | "very-urgent" => Priority::VeryUrgent,
        "3" | "hoa-toc" | "express" => Priority::Express,
        "4" | "hoa-toc-hen-gio" | "timed-express" => Priority::TimedExpress,
        _ => return Err(CoreError::InvalidPriority(s.to_string())),
    })
}

/// The Vietnamese name of a priority as it is written on a document
/// ("hỏa tốc"); "?" for a number no priority has.
pub fn name(p: i32) -> &'static str {
    match Priority::try_from(p) {
        Ok(Priority::Normal) => "thường",
        Ok(Priority::Urgent) => "khẩn",
        Ok(Priority::VeryUrgent) => "thượng khẩn",
        Ok(Priority::Express) => "hỏa tốc",
        Ok(Priority::TimedExpress) => "hỏa tốc hẹn giờ",
        Err(_) => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_numbers_and_english_parse_and_round_trip() {
        assert_eq!(parse("Hoa_Toc").unwrap(), Priority::Express);
        assert_eq!(parse("very urgent").unwrap(), Priority::VeryUrgent);
        assert_eq!(parse("0").unwrap(), Priority::Normal);
        assert!(parse("5").unwrap_err().to_string().contains("thuong, khan"));
        assert_eq!(name(Priority::Urgent as i32), "khẩn");
        assert_eq!(name(9), "?");
    }
}
