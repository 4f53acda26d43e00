//! Flags that take a value of one of the wire's enums (a priority, a
//! grouping): read with its `FromStr` (`truc_proto::names`: the name, an
//! alias or the number), and `--help` lists the names.

use std::ffi::OsStr;
use std::marker::PhantomData;

use clap::builder::{PossibleValue, TypedValueParser};
use truc_proto::names::{Named, UnknownName};

/// The value parser of a flag of type `E`.
pub(crate) fn parser<E: Named + Send + Sync>() -> NameParser<E> {
    NameParser(PhantomData)
}

/// Parses an `E` by name or number; offers `E`'s names to `--help` and the
/// shell completions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameParser<E>(PhantomData<fn() -> E>);

fn parse<E: Named>(s: &str) -> Result<E, UnknownName> {
    s.parse()
}

impl<E: Named + Send + Sync> TypedValueParser for NameParser<E> {
    type Value = E;

    fn parse_ref(&self, cmd: &clap::Command, arg: Option<&clap::Arg>, value: &OsStr) -> Result<E, clap::Error> {
        // clap's own error for a FromStr that fails: it names the flag and
        // the value, then says what was expected.
        parse::<E>.parse_ref(cmd, arg, value)
    }

    fn possible_values(&self) -> Option<Box<dyn Iterator<Item = PossibleValue> + '_>> {
        Some(Box::new(E::offered().map(|v| PossibleValue::new(v.name()))))
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use truc_proto::v1::{Priority, StatsGrouping};

    #[derive(Debug, Parser)]
    struct Flags {
        #[arg(long, default_value = "thuong", value_parser = super::parser::<Priority>())]
        priority: Priority,
        #[arg(long, default_value = "day", value_parser = super::parser::<StatsGrouping>())]
        by: StatsGrouping,
    }

    #[test]
    fn names_numbers_and_aliases_parse_and_help_lists_the_names() {
        let f = Flags::try_parse_from(["t", "--priority", "Hoa_Toc", "--by", "month"]).unwrap();
        assert_eq!((f.priority, f.by), (Priority::Express, StatsGrouping::Month));
        let f = Flags::try_parse_from(["t", "--priority", "2"]).unwrap();
        assert_eq!((f.priority, f.by), (Priority::VeryUrgent, StatsGrouping::Day));
        let err = Flags::try_parse_from(["t", "--priority", "9"]).unwrap_err().to_string();
        assert!(
            err.contains("--priority") && err.contains("unknown priority \"9\"") && err.contains("hoa-toc (3)"),
            "{err}"
        );
        let help = Flags::try_parse_from(["t", "--help"]).unwrap_err().to_string();
        assert!(
            help.contains("[possible values: thuong, khan, thuong-khan, hoa-toc, hoa-toc-hen-gio]"),
            "{help}"
        );
        assert!(help.contains("[possible values: day, month]"), "{help}");
    }
}
