//! `baton limit set|list|rm|usage`. `--json` prints the HTTP API's answer
//! types.

use baton_api::{LimitAnswer, LimitChangeAnswer, LimitKeyAnswer, LimitUsageAnswer, LimitsAnswer};
use baton_core::{AdminBackend, EngineError, Limit, LimitName, Namespace, Rate};
use clap::Subcommand;

use crate::table::Table;
use crate::{CliResult, print_json};

/// `baton limit set|list|rm|usage`.
#[derive(Debug, Subcommand)]
pub(crate) enum LimitCommand {
    /// Set a limit: claims take an execution of the namespace (of --lane
    /// only, when given) only while the limit has room for its key — at
    /// most --max-running of the key running at once, at most --rate
    /// claims of it per window — and, with --fair, take turns between the
    /// keys. It applies at once to waiting work and counts what already
    /// runs; work without room stays waiting (`baton explain` says
    /// limited) and never holds back other keys.
    Set {
        /// The limit's name (deployment-wide; setting it again replaces
        /// it).
        name: String,
        /// The namespace it covers.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The one lane it covers; without it, every lane.
        #[arg(long)]
        lane: Option<String>,
        /// What it counts executions under: tag:<key> (executions without
        /// the tag are not limited), kind or lane.
        #[arg(long)]
        key: String,
        /// How many of one key may run at once (0 holds its work back).
        #[arg(long)]
        max_running: Option<u32>,
        /// How many claims of one key a window allows: COUNT/WINDOW, such
        /// as 100/1s or 5/1m.
        #[arg(long)]
        rate: Option<String>,
        /// Share claims out between the keys: work of a key with a deep
        /// backlog waits its turn behind other keys' work (within one
        /// priority) instead of ahead of it. May stand alone (no cap, no
        /// rate).
        #[arg(long)]
        fair: bool,
    },
    /// List the limits (of --namespace only, when given).
    List {
        /// Only this namespace's limits.
        #[arg(long)]
        namespace: Option<String>,
    },
    /// Remove a limit; its keys' work is claimed as the other limits
    /// allow at once.
    Rm {
        /// The limit's name.
        name: String,
    },
    /// Show how the keys of a limit stand now: running, and claims in the
    /// rate's current window.
    Usage {
        /// The limit's name.
        name: String,
        /// Most keys to show, 1 to 1000.
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
}

/// Parses `COUNT/WINDOW` (`100/1s`).
fn parse_rate(text: &str) -> Result<Rate, EngineError> {
    let bad = || {
        EngineError::invalid(
            "rate",
            text,
            "write a rate as COUNT/WINDOW, such as 100/1s, 5/1m or 1000/1h",
        )
    };
    let (count, per) = text.split_once('/').ok_or_else(bad)?;
    Ok(Rate {
        count: count.trim().parse().map_err(|_| bad())?,
        per: baton_core::parse_duration(per.trim())?,
    })
}

fn describe(limit: &Limit) -> String {
    let scope = match &limit.lane {
        Some(lane) => format!("lane {lane} of {}", limit.namespace),
        None => format!("namespace {}", limit.namespace),
    };
    format!(
        "{} on {scope}, per {}: {}",
        limit.name,
        limit.key,
        bounds(limit)
    )
}

fn bounds(limit: &Limit) -> String {
    let mut parts = Vec::new();
    if let Some(max) = limit.max_running {
        parts.push(format!("at most {max} running"));
    }
    if let Some(rate) = limit.rate {
        parts.push(format!(
            "at most {} claims per {}",
            rate.count,
            baton_core::format_duration(rate.per)
        ));
    }
    if limit.fair {
        parts.push("keys take turns".to_owned());
    }
    parts.join(", ")
}

/// Runs one `baton limit` command.
pub(crate) async fn run(
    backend: &dyn AdminBackend,
    command: LimitCommand,
    json: bool,
) -> CliResult<()> {
    match command {
        LimitCommand::Set {
            name,
            namespace,
            lane,
            key,
            max_running,
            rate,
            fair,
        } => {
            let limit = Limit {
                name: LimitName::new(name)?,
                namespace: Namespace::new(namespace)?,
                lane: lane.map(|l| l.parse()).transpose()?,
                key: key.parse()?,
                max_running,
                rate: rate.as_deref().map(parse_rate).transpose()?,
                fair,
            };
            limit.check()?;
            let previous = backend.set_limit(&limit).await?;
            if json {
                print_json(&LimitChangeAnswer {
                    name: limit.name.to_string(),
                    limit: Some(LimitAnswer::from(&limit)),
                    previous: previous.as_ref().map(LimitAnswer::from),
                });
            } else {
                match previous {
                    Some(p) if p == limit => println!("limit {} unchanged", describe(&limit)),
                    Some(p) => println!("limit {} (was: {})", describe(&limit), describe(&p)),
                    None => println!("limit {}", describe(&limit)),
                }
            }
        }
        LimitCommand::List { namespace } => {
            let namespace = namespace.map(Namespace::new).transpose()?;
            let limits = backend.limits(namespace.as_ref()).await?;
            if json {
                print_json(&LimitsAnswer {
                    items: limits.iter().map(LimitAnswer::from).collect(),
                });
                return Ok(());
            }
            let mut t = Table::new([
                "NAME",
                "NAMESPACE",
                "LANE",
                "KEY",
                "MAX RUNNING",
                "RATE",
                "FAIR",
            ]);
            for l in &limits {
                t.row([
                    l.name.to_string(),
                    l.namespace.to_string(),
                    l.lane
                        .as_ref()
                        .map_or_else(|| "(all)".to_string(), ToString::to_string),
                    l.key.to_string(),
                    l.max_running.map_or_else(|| "-".into(), |m| m.to_string()),
                    l.rate.map_or_else(
                        || "-".into(),
                        |r| format!("{}/{}", r.count, baton_core::format_duration(r.per)),
                    ),
                    if l.fair { "yes" } else { "-" }.to_owned(),
                ]);
            }
            t.print_or("no limits: claims take work as it comes (baton limit set adds one)");
        }
        LimitCommand::Rm { name } => {
            let name = LimitName::new(name)?;
            let previous = backend.remove_limit(&name).await?;
            if json {
                print_json(&LimitChangeAnswer {
                    name: name.to_string(),
                    limit: None,
                    previous: previous.as_ref().map(LimitAnswer::from),
                });
            } else {
                match previous {
                    Some(p) => println!("removed limit {}", describe(&p)),
                    None => println!("no limit is named {name}; nothing changed"),
                }
            }
        }
        LimitCommand::Usage { name, limit } => {
            let name = LimitName::new(name)?;
            let usage = backend.limit_usage(&name, limit).await?;
            if json {
                print_json(&LimitUsageAnswer {
                    name: name.to_string(),
                    items: usage
                        .into_iter()
                        .map(|u| LimitKeyAnswer {
                            key_value: u.key_value,
                            running: u.running,
                            window_claims: u.window_claims,
                        })
                        .collect(),
                });
                return Ok(());
            }
            let mut t = Table::new(["KEY", "RUNNING", "CLAIMS IN WINDOW"]);
            for u in &usage {
                t.row([
                    u.key_value.clone(),
                    u.running.to_string(),
                    u.window_claims.to_string(),
                ]);
            }
            t.print_or(&format!(
                "no key of limit {name} runs or was claimed in its window"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_are_read_as_count_per_window() {
        let rate = parse_rate("100/1s").expect("a rate");
        assert_eq!((rate.count, rate.per), (100, Duration::from_secs(1)));
        let rate = parse_rate(" 5 / 2m ").expect("spaces allowed");
        assert_eq!((rate.count, rate.per), (5, Duration::from_secs(120)));
        for bad in ["100", "x/1s", "10/soon", "/1s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
    }
}
