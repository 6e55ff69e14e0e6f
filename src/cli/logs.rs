//! `hornbill logs tail`: a channel's, a router's or one message's log entries (Junebug's
//! entry, §2.6: logger, level, timestamp, message, and hornbill's message_id), oldest first,
//! optionally following new ones.

use super::{Client, Error, out, seg};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

pub const LOGS_EXAMPLES: &str = "\
Examples:
  hornbill logs tail                         the newest entries of every channel
  hornbill logs tail --channel CID -n 50     the newest 50 entries of one channel
  hornbill logs tail --channel CID --follow  ... and new ones as they come (Ctrl-C stops)
  hornbill logs tail --channel CID --message MID   what happened to one message
  hornbill logs tail --router RID --json     a router's log, one JSON entry a line";

/// How many entries a `--follow` poll asks for (the server caps it at its `max_logs`).
const FOLLOW_WINDOW: usize = 1000;

#[derive(Args)]
pub struct LogsArgs {
    #[command(subcommand)]
    command: LogsCommand,
}

#[derive(Subcommand)]
enum LogsCommand {
    /// Print the newest log entries, oldest first; --follow keeps printing new ones.
    ///
    /// Without --channel or --router, the logs of every channel are merged by time.
    #[command(after_help = LOGS_EXAMPLES)]
    Tail(TailArgs),
}

#[derive(Args)]
struct TailArgs {
    /// The channel whose log to read (default: every channel).
    #[arg(long, value_name = "ID", conflicts_with = "router")]
    channel: Option<String>,
    /// A router's log instead of a channel's.
    #[arg(long, value_name = "ID")]
    router: Option<String>,
    /// Only the entries of this message (its message_id; needs --channel).
    #[arg(long = "message", value_name = "MID", requires = "channel")]
    message: Option<String>,
    /// How many of the newest entries to print first (the server caps it at its max_logs).
    #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 20)]
    n: usize,
    /// Keep polling and print each new entry once.
    #[arg(short, long)]
    follow: bool,
    /// Seconds between polls with --follow.
    #[arg(long, value_name = "SECS", default_value_t = 1.0, requires = "follow")]
    interval: f64,
    /// One JSON entry a line, as the server gave it, instead of the readable form.
    #[arg(long)]
    json: bool,
}

/// What is being read.
enum Source {
    Channel(String),
    Router(String),
    Message(String, String),
    AllChannels,
}

/// One stream's entries (a channel, a router, a message), oldest first.
struct Stream {
    id: String,
    entries: Vec<Value>,
}

pub async fn run(client: &Client, args: LogsArgs) -> Result<(), Error> {
    match args.command {
        LogsCommand::Tail(t) => tail(client, t).await,
    }
}

async fn tail(client: &Client, args: TailArgs) -> Result<(), Error> {
    let source = match (&args.channel, &args.router, &args.message) {
        (Some(c), _, Some(m)) => Source::Message(c.clone(), m.clone()),
        (Some(c), _, None) => Source::Channel(c.clone()),
        (None, Some(r), _) => Source::Router(r.clone()),
        (None, None, _) => Source::AllChannels,
    };
    // A follow asks for the whole window every time, so that what it saw can be told apart
    // from what is new; a one-off asks for just what it prints.
    let first_n = if args.follow {
        FOLLOW_WINDOW.max(args.n)
    } else {
        args.n.max(1)
    };
    let streams = fetch(client, &source, first_n).await?;
    let mut merged: Vec<&Value> = streams.iter().flat_map(|s| s.entries.iter()).collect();
    sort_by_time(&mut merged);
    let skip = merged.len().saturating_sub(args.n);
    for e in &merged[skip..] {
        print_entry(e, args.json)?;
    }
    if !args.follow {
        return Ok(());
    }
    let mut seen: HashMap<String, HashSet<Key>> = streams
        .iter()
        .map(|s| (s.id.clone(), s.entries.iter().map(key).collect()))
        .collect();
    let interval = Duration::from_secs_f64(args.interval.clamp(0.05, 3600.0));
    let mut down = false;
    loop {
        tokio::time::sleep(interval).await;
        let streams = match fetch(client, &source, FOLLOW_WINDOW).await {
            Ok(s) => {
                if down {
                    eprintln!(
                        "hornbill: the server at {} answers again",
                        client.shown_url()
                    );
                    down = false;
                }
                s
            }
            // A server restarting is no reason to stop following; a refusal is.
            Err(Error::Unreachable(m)) => {
                if !down {
                    eprintln!("hornbill: {m} (still trying)");
                    down = true;
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut fresh: Vec<&Value> = Vec::new();
        for s in &streams {
            let before = seen.get(&s.id);
            let new: Vec<&Value> = s
                .entries
                .iter()
                .filter(|e| before.is_none_or(|b| !b.contains(&key(e))))
                .collect();
            // Nothing of the last window is left, and the window is as full as it was: as
            // many came in as one poll reads. (A shorter one is a log that started again: a
            // server restart.)
            if before.is_some_and(|b| !b.is_empty() && s.entries.len() >= b.len())
                && new.len() == s.entries.len()
            {
                eprintln!(
                    "hornbill: {}: none of the entries seen before is left in the log: some \
                     may have been missed (or the server started again)",
                    s.id
                );
            }
            fresh.extend(new);
        }
        sort_by_time(&mut fresh);
        for e in fresh {
            print_entry(e, args.json)?;
        }
        // An entry that left the newest window can never come back into it: what a stream
        // showed this time is all that needs remembering.
        for s in streams {
            seen.insert(s.id, s.entries.iter().map(key).collect());
        }
    }
}

/// The stable sort by timestamp (entries of one stream keep their order on ties).
fn sort_by_time(entries: &mut [&Value]) {
    entries.sort_by(|a, b| {
        let t = |v: &Value| v["timestamp"].as_f64().unwrap_or(0.0);
        t(a).total_cmp(&t(b))
    });
}

/// What tells one entry from another: its stream, time, text and message.
type Key = (String, String, String, String);

fn key(e: &Value) -> Key {
    let s = |k: &str| match &e[k] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    (s("logger"), s("timestamp"), s("message"), s("message_id"))
}

/// Reads the entries of `source`, the newest `n` of each stream.
async fn fetch(client: &Client, source: &Source, n: usize) -> Result<Vec<Stream>, Error> {
    match source {
        Source::Channel(cid) => Ok(vec![Stream {
            id: cid.clone(),
            entries: newest_first(client, &format!("/channels/{}/logs?n={n}", seg(cid))).await?,
        }]),
        Source::Router(rid) => Ok(vec![Stream {
            id: rid.clone(),
            entries: newest_first(client, &format!("/routers/{}/logs?n={n}", seg(rid))).await?,
        }]),
        Source::Message(cid, mid) => {
            let path = format!("/channels/{}/messages/{}/logs", seg(cid), seg(mid));
            let entries = match client.get(&path).await {
                Ok(Value::Array(list)) => list,
                Ok(other) => return Err(unexpected(&path, &other)),
                Err(Error::Api(f)) if f.is_no_route() => {
                    return Err(Error::Other(format!(
                        "the server at {} has no per-message logs (GET {path} is not a \
                         route there): it is older than this client. `logs tail --channel \
                         {cid} --json` shows the channel's entries, with their message_id.",
                        client.shown_url()
                    )));
                }
                Err(e) => return Err(e),
            };
            // The route gives them oldest first; the newest `n` are kept.
            let skip = entries.len().saturating_sub(n);
            Ok(vec![Stream {
                id: format!("{cid}/{mid}"),
                entries: entries.into_iter().skip(skip).collect(),
            }])
        }
        Source::AllChannels => {
            let ids = match client.get("/channels/").await? {
                Value::Array(ids) => ids,
                other => return Err(unexpected("/channels/", &other)),
            };
            let ids: Vec<String> = ids
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            let reads = ids.iter().map(|cid| async move {
                let path = format!("/channels/{}/logs?n={n}", seg(cid));
                (cid.clone(), newest_first(client, &path).await)
            });
            let mut streams = Vec::new();
            for (cid, read) in futures::future::join_all(reads).await {
                match read {
                    Ok(entries) => streams.push(Stream { id: cid, entries }),
                    // Deleted between the list and the read.
                    Err(Error::Api(f)) if f.status == 404 && !f.is_no_route() => {}
                    Err(e) => return Err(e),
                }
            }
            Ok(streams)
        }
    }
}

/// A logs endpoint's entries (newest first on the wire), oldest first.
async fn newest_first(client: &Client, path: &str) -> Result<Vec<Value>, Error> {
    match client.get(path).await? {
        Value::Array(mut list) => {
            list.reverse();
            Ok(list)
        }
        other => Err(unexpected(path, &other)),
    }
}

fn unexpected(path: &str, result: &Value) -> Error {
    let mut shown = result.to_string();
    if shown.len() > 200 {
        shown = format!("{}…", shown.chars().take(200).collect::<String>());
    }
    Error::Other(format!(
        "GET {path}: expected a list, the server gave {shown}"
    ))
}

fn print_entry(e: &Value, json: bool) -> Result<(), Error> {
    if json { out(e) } else { out(format_entry(e)) }
}

/// Python's level names (Junebug's entries carry the numbers).
pub fn level_name(level: i64) -> String {
    match level {
        50 => "CRITICAL".into(),
        40 => "ERROR".into(),
        30 => "WARNING".into(),
        20 => "INFO".into(),
        10 => "DEBUG".into(),
        n => format!("LEVEL{n}"),
    }
}

/// Seconds since the epoch as local time, to the millisecond.
fn local_time(ts: f64) -> String {
    let secs = ts.floor();
    let nanos = ((ts - secs) * 1e9).round().clamp(0.0, 999_999_999.0) as u32;
    match chrono::DateTime::from_timestamp(secs as i64, nanos) {
        Some(t) => t
            .with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S%.3f")
            .to_string(),
        None => ts.to_string(),
    }
}

/// `2025-01-02 13:04:05.123 WARNING <logger> [<message_id>] <message>`, and the exception
/// (Junebug's) on the lines below.
pub fn format_entry(e: &Value) -> String {
    let time = e["timestamp"]
        .as_f64()
        .map(local_time)
        .unwrap_or_else(|| "-".into());
    let level = e["level"]
        .as_i64()
        .map(level_name)
        .unwrap_or_else(|| "-".into());
    let logger = e["logger"].as_str().unwrap_or("-");
    let message = match &e["message"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    let mut line = format!("{time} {level:<7} {logger} ");
    if let Some(mid) = e["message_id"].as_str() {
        line.push_str(&format!("[{mid}] "));
    }
    line.push_str(&message);
    if let Some(exc) = e.get("exception").filter(|x| !x.is_null()) {
        let part = |k: &str| exc[k].as_str().unwrap_or("").to_string();
        line.push_str(&format!("\n    {} {}", part("class"), part("instance")));
        if let Some(stack) = exc["stack"].as_array() {
            for frame in stack {
                let text = match frame {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                line.push_str(&format!("\n      {text}"));
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_entry_reads_as_one_line() {
        let line = format_entry(&json!({
            "logger": "cid", "level": 30, "timestamp": 1700000000.5,
            "message": "Webhook refused", "message_id": "abc"
        }));
        assert!(
            line.ends_with(" WARNING cid [abc] Webhook refused"),
            "{line}"
        );
        assert!(line.contains(".500 "), "{line}");
        let line =
            format_entry(&json!({"logger": "rid", "level": 20, "timestamp": 1.0, "message": "up"}));
        assert!(line.ends_with(" INFO    rid up"), "{line}");
        assert_eq!(level_name(25), "LEVEL25");
    }

    #[test]
    fn keys_tell_entries_apart() {
        let a = json!({"logger": "c", "timestamp": 1.5, "message": "m"});
        let b = json!({"logger": "c", "timestamp": 1.5, "message": "m", "message_id": "x"});
        assert_ne!(key(&a), key(&b));
        assert_eq!(key(&a), key(&a.clone()));
    }
}
