//! `truc ops`: operator commands.

use clap::Subcommand;
use serde_json::json;

use super::output;
use super::Conn;

#[derive(Debug, Subcommand)]
pub(crate) enum OpsCommand {
    /// The agency directory.
    #[command(subcommand)]
    Agencies(AgenciesCommand),
}

#[derive(Debug, Subcommand)]
pub(crate) enum AgenciesCommand {
    /// Register an agency (or rename a registered one).
    Add {
        /// Agency code: QCVN 102 (000.00.00.G22) or QĐ 20 (G09.01) form.
        code: String,
        /// Display name.
        #[arg(long)]
        name: String,
        #[command(flatten)]
        conn: Conn,
    },
    /// List registered agencies with their state and queue depth.
    List {
        #[command(flatten)]
        conn: Conn,
    },
}

fn state_name(s: i32) -> &'static str {
    match truc_proto::v1::AgencyState::try_from(s) {
        Ok(truc_proto::v1::AgencyState::Active) => "active",
        Ok(truc_proto::v1::AgencyState::Suspended) => "suspended",
        Ok(truc_proto::v1::AgencyState::Retired) => "retired",
        _ => "unknown",
    }
}

pub(crate) async fn run(cmd: OpsCommand) -> anyhow::Result<()> {
    match cmd {
        OpsCommand::Agencies(AgenciesCommand::Add { code, name, conn }) => {
            let a = conn.client().await?.add_agency(&code, &name).await?;
            if conn.json {
                println!(
                    "{}",
                    json!({"code": a.code, "name": a.name, "state": state_name(a.state)})
                );
            } else {
                println!("registered {} {:?} ({})", a.code, a.name, state_name(a.state));
            }
        }
        OpsCommand::Agencies(AgenciesCommand::List { conn }) => {
            let list = conn.client().await?.list_agencies().await?;
            if conn.json {
                let v: Vec<_> = list
                    .iter()
                    .map(|a| {
                        json!({
                            "code": a.code, "name": a.name, "state": state_name(a.state),
                            "registered_at_unix_ms": a.registered_at_unix_ms, "queued": a.queued,
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                println!(
                    "{:<20} {:<10} {:>7}  {:<24} NAME",
                    "CODE", "STATE", "QUEUED", "REGISTERED"
                );
                for a in &list {
                    println!(
                        "{:<20} {:<10} {:>7}  {:<24} {}",
                        a.code,
                        state_name(a.state),
                        a.queued,
                        output::time(a.registered_at_unix_ms),
                        a.name
                    );
                }
            }
        }
    }
    Ok(())
}
