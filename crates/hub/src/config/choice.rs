//! Keys that take one of a few words (`store.backend`, `tls.min_version`,
//! `log.format`, `console.mode`): each an enum, read once when the
//! configuration is loaded, refused there with the allowed words, and
//! matched as a value from then on.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use thiserror::Error;

/// A value that is none of a key's words.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{key} = {given:?}: expected {}", Expected(allowed))]
pub struct UnknownChoice {
    /// The dotted key.
    pub key: &'static str,
    /// What was given.
    pub given: String,
    /// The words the key takes.
    pub allowed: &'static [&'static str],
}

/// `"a", "b" or "c"`.
struct Expected(&'static [&'static str]);

impl fmt::Display for Expected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, word) in self.0.iter().enumerate() {
            let sep = match i {
                0 => "",
                _ if i + 1 == self.0.len() => " or ",
                _ => ", ",
            };
            write!(f, "{sep}{word:?}")?;
        }
        Ok(())
    }
}

/// Each key's enum: its values and the words they are written as.
macro_rules! choices {
    ($(
        $(#[$meta:meta])*
        pub enum $name:ident($key:literal) {
            $($(#[$vmeta:meta])* $value:ident = $word:literal,)+
        }
    )+) => {$(
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
        pub enum $name {
            $($(#[$vmeta])* $value,)+
        }

        impl $name {
            /// The dotted key this value is given under.
            pub const KEY: &'static str = $key;
            /// The words the key takes.
            pub const WORDS: &'static [&'static str] = &[$($word),+];

            /// The word for this value, as the configuration writes it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$value => $word,)+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownChoice;

            fn from_str(s: &str) -> Result<Self, UnknownChoice> {
                match s {
                    $($word => Ok($name::$value),)+
                    _ => Err(UnknownChoice {
                        key: $key,
                        given: s.to_string(),
                        allowed: Self::WORDS,
                    }),
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(WordVisitor::<$name>(PhantomData))
            }
        }
    )+};
}

/// Reads a word, or a number written without quotes (`min_version = 1.3`,
/// `TRUC_TLS_MIN_VERSION=1.3`), and parses it.
struct WordVisitor<T>(PhantomData<T>);

impl<T: FromStr<Err = UnknownChoice>> serde::de::Visitor<'_> for WordVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a word")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<T, E> {
        v.parse().map_err(E::custom)
    }

    fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }

    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<T, E> {
        self.visit_str(&v.to_string())
    }
}

choices! {
    /// `store.backend`: where state is kept.
    pub enum StoreBackend("store.backend") {
        /// Embedded sled in `data_dir` (the default).
        #[default]
        Sled = "sled",
        /// A replicated log on a NATS JetStream cluster, shared by several
        /// hubs; `data_dir` holds this hub's local view of it.
        Jetstream = "jetstream",
    }

    /// `store.engine`: the engine of the store's view in `data_dir` (the
    /// embedded backend's state, a JetStream hub's local view). A store
    /// keeps the engine it was created with; this chooses for a new one.
    pub enum StoreEngine("store.engine") {
        /// fjall, an LSM tree (the default): a fifth less CPU per document
        /// than sled and a third more documents per second (BENCHMARKS.md).
        #[default]
        Fjall = "fjall",
        /// sled, a B-tree (every store created before fjall).
        Sled = "sled",
    }

    /// `tls.min_version`: the oldest TLS version accepted.
    pub enum TlsVersion("tls.min_version") {
        /// TLS 1.2 and 1.3 (the default).
        #[default]
        V1_2 = "1.2",
        /// TLS 1.3 only.
        V1_3 = "1.3",
    }

    /// `log.format`: how log lines are written.
    pub enum LogFormat("log.format") {
        /// Text for people (the default).
        #[default]
        Plain = "plain",
        /// One JSON object per line.
        Json = "json",
    }

    /// `console.mode`: how the console's users are authenticated.
    pub enum ConsoleMode("console.mode") {
        /// HTTPS; the browser presents an operator or auditor certificate
        /// (the default).
        #[default]
        Mtls = "mtls",
        /// Plain HTTP behind a TLS-terminating reverse proxy that passes
        /// the client certificate in `console.proxy_header`.
        Proxy = "proxy",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every word of `$t` reads as a value that writes it back; another
    /// word is refused naming the key and every word.
    macro_rules! check {
        ($($t:ty),+) => {$(
            for w in <$t>::WORDS {
                let v: $t = w.parse().unwrap();
                assert_eq!((v.to_string(), v.as_str()), (w.to_string(), *w));
            }
            let err = "nope".parse::<$t>().unwrap_err();
            assert_eq!((err.key, err.allowed), (<$t>::KEY, <$t>::WORDS));
            assert!(err.to_string().starts_with(&format!("{} = \"nope\": expected ", <$t>::KEY)), "{err}");
        )+};
    }

    #[test]
    fn every_word_reads_back_and_others_are_refused_naming_the_words() {
        check!(StoreBackend, TlsVersion, LogFormat, ConsoleMode);
        assert_eq!(
            "xml".parse::<LogFormat>().unwrap_err().to_string(),
            "log.format = \"xml\": expected \"plain\" or \"json\""
        );
        assert_eq!(Expected(&["a", "b", "c"]).to_string(), "\"a\", \"b\" or \"c\"",);
        assert_eq!(LogFormat::default(), LogFormat::Plain);
        assert_eq!(TlsVersion::default(), TlsVersion::V1_2);
    }
}
