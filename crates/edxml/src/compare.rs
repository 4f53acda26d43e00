//! The normalised comparison of two packages.

use std::collections::BTreeMap;
use std::fmt;

use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::model::Package;

/// Where two packages differ, as found by [`first_difference`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    /// The element (path of local names, with `[n]` for the n-th of its siblings).
    pub element: String,
    /// What the first package has there.
    pub left: String,
    /// What the second package has there.
    pub right: String,
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ≠ {}", self.element, self.left, self.right)
    }
}

/// True when `a` and `b` say the same thing: see [`first_difference`].
pub fn same_content(a: &Package, b: &Package) -> bool {
    first_difference(a, b).is_none()
}

/// Compares two packages field by field and returns the first difference, if any.
///
/// Both are written in one canonical form and compared element by element, by namespace
/// and local name (so `edXML:` prefixes or a default namespace do not matter), attributes
/// as a set (order and namespace declarations do not matter), text with surrounding
/// whitespace trimmed and inner runs of whitespace collapsed. Typed values compare by
/// value (`Priority` `02` equals `2`). Attachments compare by their metadata, decoded
/// size and SHA-256 (byte-identical contents). Unmodelled elements compare by the same
/// rules, in place. Comments are ignored.
pub fn first_difference(a: &Package, b: &Package) -> Option<Difference> {
    let (ta, tb) = match (tree(a), tree(b)) {
        (Ok(ta), Ok(tb)) => (ta, tb),
        (ra, rb) => {
            return Some(Difference {
                element: "edXML".into(),
                left: ra.err().unwrap_or_else(|| "ok".into()),
                right: rb.err().unwrap_or_else(|| "ok".into()),
            })
        }
    };
    diff(&ta, &tb, "edXML")
}

#[derive(Debug, PartialEq, Eq)]
struct Node {
    ns: String,
    local: String,
    attrs: BTreeMap<(String, String), String>,
    text: String,
    children: Vec<Node>,
}

fn tree(p: &Package) -> Result<Node, String> {
    let xml = crate::write::canonical(p).map_err(|e| e.to_string())?;
    let mut r = NsReader::from_reader(xml.as_slice());
    let mut stack: Vec<Node> = Vec::new();
    let mut buf = Vec::new();
    loop {
        buf.clear();
        let (res, ev) = r.read_resolved_event_into(&mut buf).map_err(|e| e.to_string())?;
        let ns = match res {
            ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
            _ => String::new(),
        };
        let is_start = matches!(ev, Event::Start(_));
        match ev {
            Event::Start(s) | Event::Empty(s) => {
                let mut attrs = BTreeMap::new();
                for a in s.attributes() {
                    let a = a.map_err(|e| e.to_string())?;
                    if a.key.as_namespace_binding().is_some() {
                        continue;
                    }
                    let (ares, local) = r.resolve_attribute(a.key);
                    let ans = match ares {
                        ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
                        _ => String::new(),
                    };
                    let value = a.unescape_value().map_err(|e| e.to_string())?;
                    attrs.insert(
                        (ans, String::from_utf8_lossy(local.as_ref()).into_owned()),
                        normal(&value),
                    );
                }
                let node = Node {
                    ns,
                    local: String::from_utf8_lossy(s.local_name().as_ref()).into_owned(),
                    attrs,
                    text: String::new(),
                    children: Vec::new(),
                };
                if is_start {
                    stack.push(node);
                } else {
                    close(&mut stack, node)?;
                }
            }
            Event::End(_) => {
                let mut node = stack.pop().ok_or("unbalanced")?;
                node.text = normal(&node.text);
                if stack.is_empty() {
                    return Ok(node);
                }
                close(&mut stack, node)?;
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.xml10_content().map_err(|e| e.to_string())?);
                }
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
            }
            Event::GeneralRef(g) => {
                if let Some(top) = stack.last_mut() {
                    let c = match g.resolve_char_ref().map_err(|e| e.to_string())? {
                        Some(c) => c,
                        None => match g.as_ref() {
                            b"amp" => '&',
                            b"lt" => '<',
                            b"gt" => '>',
                            b"apos" => '\'',
                            b"quot" => '"',
                            _ => return Err("unknown entity".into()),
                        },
                    };
                    top.text.push(c);
                }
            }
            Event::Eof => return Err("unexpected end".into()),
            _ => {}
        }
    }
}

fn close(stack: &mut [Node], node: Node) -> Result<(), String> {
    stack.last_mut().ok_or("unbalanced")?.children.push(node);
    Ok(())
}

fn normal(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn show(n: &Node) -> String {
    if n.ns.is_empty() {
        n.local.clone()
    } else {
        format!("{{{}}}{}", n.ns, n.local)
    }
}

fn diff(a: &Node, b: &Node, path: &str) -> Option<Difference> {
    let d = |left: String, right: String| {
        Some(Difference {
            element: path.to_owned(),
            left,
            right,
        })
    };
    if (&a.ns, &a.local) != (&b.ns, &b.local) {
        return d(show(a), show(b));
    }
    if a.attrs != b.attrs {
        return d(format!("attributes {:?}", a.attrs), format!("attributes {:?}", b.attrs));
    }
    if a.text != b.text {
        return d(format!("{:?}", a.text), format!("{:?}", b.text));
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, ca) in a.children.iter().enumerate() {
        let n = seen.entry(ca.local.as_str()).or_default();
        *n += 1;
        let child_path = format!("{path}/{}[{n}]", ca.local);
        match b.children.get(i) {
            Some(cb) => {
                if let Some(found) = diff(ca, cb, &child_path) {
                    return Some(found);
                }
            }
            None => return d(format!("{} present", show(ca)), "absent".into()),
        }
    }
    if let Some(cb) = b.children.get(a.children.len()) {
        return d("absent".into(), format!("{} present", show(cb)));
    }
    None
}
