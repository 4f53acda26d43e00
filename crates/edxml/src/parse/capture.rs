//! Unmodelled elements, captured as self-contained raw XML.

use std::io::BufRead;

use quick_xml::events::Event;

use super::{Next, Parser};
use crate::error::{Error, Result};

/// How deep an unmodelled element may nest. XML-DSig needs 5 levels; a vendor extension
/// a few. The bound keeps every later walk over the element (comparison, drop) shallow.
const MAX_DEPTH: usize = 64;

impl<R: BufRead> Parser<'_, R> {
    /// Captures an unmodelled element (its start already read) as self-contained XML.
    pub(super) fn capture(&mut self, first: Next) -> Result<String> {
        let root = first.el.expect("start resolved");
        self.path.push(root.local.clone());
        let mut events = vec![(first.ev, Some(root))];
        let mut depth = usize::from(matches!(events[0].0, Event::Start(_)));
        while depth > 0 {
            let n = self.next()?;
            match &n.ev {
                Event::Start(_) => {
                    depth += 1;
                    if depth > MAX_DEPTH {
                        return Err(Error::Invalid {
                            element: self.here(),
                            reason: format!("unmodelled element nested deeper than {MAX_DEPTH} levels"),
                        });
                    }
                }
                Event::End(_) => depth -= 1,
                Event::Eof => return Err(self.not_xml("unexpected end of input")),
                Event::Decl(_) | Event::DocType(_) => return Err(self.not_xml("declaration inside an element")),
                Event::GeneralRef(r) => {
                    self.reference(r)?;
                }
                _ => {}
            }
            events.push((n.ev, n.el));
        }
        self.path.pop();
        // Prefixes used, with the namespace each resolved to where first used, and the
        // prefixes declared somewhere inside (those need no help).
        let mut used: Vec<(Option<String>, Option<String>)> = Vec::new();
        let mut declared: Vec<Option<String>> = Vec::new();
        for el in events.iter().filter_map(|(_, el)| el.as_ref()) {
            let mut note = |prefix: &Option<String>, ns: &Option<String>| {
                if prefix.as_deref() != Some("xml") && !used.iter().any(|(p, _)| p == prefix) {
                    used.push((prefix.clone(), ns.clone()));
                }
            };
            note(&el.prefix, &el.ns);
            for a in &el.attrs {
                if a.qname == "xmlns" {
                    declared.push(None);
                } else if let Some(p) = a.qname.strip_prefix("xmlns:") {
                    declared.push(Some(p.to_owned()));
                } else if a.prefix.is_some() {
                    note(&a.prefix, &a.ns);
                }
            }
        }
        let mut writer = quick_xml::Writer::new(Vec::new());
        let mut iter = events.into_iter();
        let (first_ev, _) = iter.next().expect("one event");
        let add = |mut start: quick_xml::events::BytesStart<'static>| {
            for (prefix, ns) in &used {
                if declared.contains(prefix) {
                    continue;
                }
                let ns = ns.as_deref().unwrap_or("");
                match prefix {
                    Some(p) => start.push_attribute((format!("xmlns:{p}").as_str(), ns)),
                    None => start.push_attribute(("xmlns", ns)),
                }
            }
            start
        };
        let first_ev = match first_ev {
            Event::Start(s) => Event::Start(add(s)),
            Event::Empty(s) => Event::Empty(add(s)),
            other => other,
        };
        let io = |e: std::io::Error| Error::Io {
            element: "(capture)".into(),
            source: e,
        };
        writer.write_event(first_ev).map_err(io)?;
        for (ev, _) in iter {
            writer.write_event(ev).map_err(io)?;
        }
        String::from_utf8(writer.into_inner()).map_err(|_| self.not_xml("invalid UTF-8"))
    }
}
