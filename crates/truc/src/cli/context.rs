//! Saved contexts, as `nats context` keeps them: a name for a hub address
//! and an identity directory, one of them current. Commands that talk to a
//! hub take --hub and --identity from the current context (or the one
//! `TRUC_CONTEXT` names) when neither the flag nor `TRUC_HUB` /
//! `TRUC_IDENTITY` gives them.
//!
//! Kept in `$TRUC_CONTEXTS`, else `$XDG_CONFIG_HOME/truc/contexts.json`,
//! else `~/.config/truc/contexts.json`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

use super::errors::Problem;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum ContextCommand {
    /// Save a context (replacing one of the same name).
    Add {
        /// Its name, e.g. prod, g22.
        name: String,
        /// Hub address, host:port.
        #[arg(long, value_parser = super::hub_address)]
        hub: String,
        /// Identity directory (kept as an absolute path).
        #[arg(long, value_name = "DIR")]
        identity: PathBuf,
        /// Make it the current context too.
        #[arg(long = "use")]
        use_it: bool,
        #[command(flatten)]
        out: super::output::OutputArgs,
    },
    /// Make a saved context the current one.
    Use {
        name: String,
        #[command(flatten)]
        out: super::output::OutputArgs,
    },
    /// The saved contexts; the current one is marked with *.
    List {
        #[command(flatten)]
        out: super::output::OutputArgs,
    },
    /// Forget a saved context.
    Remove {
        name: String,
        #[command(flatten)]
        out: super::output::OutputArgs,
    },
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Contexts {
    #[serde(default)]
    current: Option<String>,
    #[serde(default)]
    contexts: BTreeMap<String, Saved>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Saved {
    hub: String,
    identity: PathBuf,
}

fn path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("TRUC_CONTEXTS") {
        return Some(PathBuf::from(p));
    }
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("truc").join("contexts.json"))
}

fn load() -> anyhow::Result<(PathBuf, Contexts)> {
    let p = path().ok_or_else(|| Problem::usage("no place for contexts: set HOME or TRUC_CONTEXTS"))?;
    let c = match std::fs::read_to_string(&p) {
        Ok(t) => serde_json::from_str(&t).with_context(|| format!("reading {}", p.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Contexts::default(),
        Err(e) => return Err(anyhow::Error::new(e).context(format!("reading {}", p.display()))),
    };
    Ok((p, c))
}

fn save(p: &PathBuf, c: &Contexts) -> anyhow::Result<()> {
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(c)?).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, p).with_context(|| format!("writing {}", p.display()))?;
    Ok(())
}

/// Before parsing: fill `TRUC_HUB` and `TRUC_IDENTITY` from the context in
/// force, where they are not set. A broken or missing file changes nothing
/// (the context commands report it).
pub(crate) fn apply() {
    let Ok((_, c)) = load() else { return };
    let name = std::env::var("TRUC_CONTEXT").ok().or(c.current.clone());
    let Some(saved) = name.and_then(|n| c.contexts.get(&n).cloned()) else {
        return;
    };
    // Edition 2021, one thread: nothing else reads the environment yet.
    if std::env::var_os("TRUC_HUB").is_none() {
        std::env::set_var("TRUC_HUB", &saved.hub);
    }
    if std::env::var_os("TRUC_IDENTITY").is_none() {
        std::env::set_var("TRUC_IDENTITY", &saved.identity);
    }
}

pub(crate) fn run(cmd: ContextCommand) -> anyhow::Result<()> {
    let (p, mut c) = load()?;
    let unknown = |name: &str| {
        Problem::not_found(format!("no context {name:?}")).hint("`truc context list` shows the saved ones")
    };
    match cmd {
        ContextCommand::Add {
            name,
            hub,
            identity,
            use_it,
            out,
        } => {
            let identity = std::fs::canonicalize(&identity)
                .with_context(|| format!("identity directory {}", identity.display()))?;
            truc_pki::Identity::load(&identity)?;
            c.contexts.insert(name.clone(), Saved { hub, identity });
            if use_it || c.current.is_none() {
                c.current = Some(name.clone());
            }
            save(&p, &c)?;
            let current = c.current.as_deref() == Some(name.as_str());
            out.object(
                serde_json::json!({"name": name, "hub": c.contexts[&name].hub, "identity": c.contexts[&name].identity,
                    "current": current, "file": p}),
                || {
                    format!(
                        "saved context {name}{} in {}\n",
                        if current { " (current)" } else { "" },
                        p.display()
                    )
                },
            );
        }
        ContextCommand::Use { name, out } => {
            if !c.contexts.contains_key(&name) {
                return Err(unknown(&name).into());
            }
            c.current = Some(name.clone());
            save(&p, &c)?;
            out.object(serde_json::json!({"current": name}), || {
                format!("current context: {name}\n")
            });
        }
        ContextCommand::Remove { name, out } => {
            if c.contexts.remove(&name).is_none() {
                return Err(unknown(&name).into());
            }
            if c.current.as_deref() == Some(name.as_str()) {
                c.current = None;
            }
            save(&p, &c)?;
            out.object(serde_json::json!({"removed": name}), || {
                format!("removed context {name}\n")
            });
        }
        ContextCommand::List { out } => {
            let rows: Vec<_> = c
                .contexts
                .iter()
                .map(|(n, s)| {
                    serde_json::json!({"name": n, "hub": s.hub, "identity": s.identity,
                        "current": c.current.as_deref() == Some(n.as_str())})
                })
                .collect();
            let table = |headers: bool| {
                let mut t = String::new();
                if headers {
                    t += &format!("  {:<16} {:<28} IDENTITY\n", "NAME", "HUB");
                }
                for (n, s) in &c.contexts {
                    let mark = if c.current.as_deref() == Some(n.as_str()) {
                        "*"
                    } else {
                        " "
                    };
                    t += &format!("{mark} {n:<16} {:<28} {}\n", s.hub, s.identity.display());
                }
                t
            };
            let cols = ["name", "hub", "identity", "current"].map(String::from);
            out.rows(&cols, rows, serde_json::Value::Array, table);
        }
    }
    Ok(())
}
