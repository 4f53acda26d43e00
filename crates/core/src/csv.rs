//! CSV records as RFC 4180 writes them: the one writer behind `truc … -o
//! csv`, `truc stats --csv` and the console's `/api/stats.csv`.
//!
//! A field is quoted when it holds a comma, a double quote, a carriage
//! return or a line feed (Vietnamese subjects and agency names do), its
//! quotes doubled. Records end with a line feed, not the RFC's CRLF: every
//! CSV reader takes either, and `cut`, `awk` and `while read` in a shell
//! would keep the carriage return in the last field.

use std::borrow::Cow;

/// `field` as it goes between the commas of a record.
pub fn field(field: &str) -> Cow<'_, str> {
    if field.contains([',', '"', '\r', '\n']) {
        Cow::Owned(format!("\"{}\"", field.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(field)
    }
}

/// Append one record of `fields` to `out`, its line feed included.
pub fn write_record<I, S>(out: &mut String, fields: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&field(f.as_ref()));
    }
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fields_stay_plain_and_others_are_quoted_with_quotes_doubled() {
        let mut out = String::new();
        write_record(&mut out, ["000.00.00.G22", "12", ""]);
        write_record(&mut out, ["Công văn số 12, \"khẩn\"", "dòng một\ndòng hai"]);
        assert_eq!(
            out,
            "000.00.00.G22,12,\n\"Công văn số 12, \"\"khẩn\"\"\",\"dòng một\ndòng hai\"\n"
        );
    }
}
