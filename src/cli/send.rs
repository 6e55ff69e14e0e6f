//! `hornbill send`: `POST /channels/{id}/messages/` (Junebug's endpoint 8), and with `--wait`
//! the message's first event from `GET /channels/{id}/messages/{mid}`.

use super::{Client, Error, out, pretty, seg};
use clap::{ArgGroup, Args, ValueEnum};
use serde_json::{Map, Value, json};
use std::time::{Duration, Instant};

pub const SEND_EXAMPLES: &str = "\
Examples:
  hornbill send --channel CID --to +27831234567 --content 'Hello'
  hornbill send --channel CID --reply-to MID --content 'Thanks, bye' --close
  echo 'From stdin' | hornbill send --channel CID --to +27831234567 --content -
  hornbill send --channel CID --to +27831234567 --content 'Hi' --wait   prints the first event";

#[derive(Clone, Copy, ValueEnum)]
enum Priority {
    /// Overtakes bulk messages (replies default to it).
    Realtime,
    /// Queued behind realtime messages (new messages default to it).
    Bulk,
}

#[derive(Args)]
#[command(group(ArgGroup::new("recipient").required(true).args(["to", "reply_to"])))]
pub struct SendArgs {
    /// The channel to send on.
    #[arg(long, value_name = "ID")]
    channel: String,
    /// The recipient's address (a new message).
    #[arg(long, value_name = "ADDR")]
    to: Option<String>,
    /// The id of an inbound message to reply to (its sender gets it, in its session).
    #[arg(long, value_name = "MID")]
    reply_to: Option<String>,
    /// The sender's address (default: the channel's).
    #[arg(long, value_name = "ADDR")]
    from: Option<String>,
    /// The text; `-` reads it from stdin. Without it, the content is null (e.g. to only
    /// close a session).
    #[arg(long, value_name = "TEXT", allow_hyphen_values = true)]
    content: Option<String>,
    /// Delivery priority.
    #[arg(long, value_enum)]
    priority: Option<Priority>,
    /// Where the message's events are POSTed.
    #[arg(long, value_name = "URL")]
    event_url: Option<String>,
    /// End the session with this message (USSD, telnet): channel_data.continue_session = false.
    #[arg(long)]
    close: bool,
    /// More channel_data, as a JSON object (e.g. '{"session_event": "close"}').
    #[arg(long, value_name = "JSON")]
    channel_data: Option<String>,
    /// Print the message object (and with --wait the event) as JSON instead of the id.
    #[arg(long)]
    json: bool,
    /// Wait for the message's first event (submitted, rejected, delivery_*) and print it;
    /// exit 1 if it is a failure or none comes in time.
    #[arg(long)]
    wait: bool,
    /// Seconds --wait waits.
    #[arg(long, value_name = "SECS", default_value_t = 30.0, requires = "wait")]
    timeout: f64,
}

pub async fn run(client: &Client, args: SendArgs) -> Result<(), Error> {
    let mut body = Map::new();
    if let Some(to) = &args.to {
        body.insert("to".into(), json!(to));
    }
    if let Some(r) = &args.reply_to {
        body.insert("reply_to".into(), json!(r));
    }
    if let Some(f) = &args.from {
        body.insert("from".into(), json!(f));
    }
    let content = match args.content.as_deref() {
        Some("-") => {
            let mut text = std::io::read_to_string(std::io::stdin())
                .map_err(|e| Error::Other(format!("cannot read the content from stdin: {e}")))?;
            // The newline that ends the last line is not part of the message.
            if text.ends_with('\n') {
                text.pop();
                if text.ends_with('\r') {
                    text.pop();
                }
            }
            Some(text)
        }
        other => other.map(str::to_string),
    };
    body.insert("content".into(), json!(content));
    if let Some(p) = args.priority {
        let p = match p {
            Priority::Realtime => "realtime",
            Priority::Bulk => "bulk",
        };
        body.insert("priority".into(), json!(p));
    }
    if let Some(u) = &args.event_url {
        body.insert("event_url".into(), json!(u));
    }
    let mut channel_data = match args.channel_data.as_deref() {
        None => Map::new(),
        Some(text) => match serde_json::from_str(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => return Err(Error::Other("--channel-data must be a JSON object".into())),
            Err(e) => return Err(Error::Other(format!("--channel-data is not JSON: {e}"))),
        },
    };
    if args.close {
        channel_data.insert("continue_session".into(), json!(false));
    }
    if !channel_data.is_empty() {
        body.insert("channel_data".into(), Value::Object(channel_data));
    }
    let cid = seg(&args.channel);
    let message = client
        .post(&format!("/channels/{cid}/messages/"), &Value::Object(body))
        .await?;
    let mid = message["message_id"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    if args.json {
        out(pretty(&message))?;
    } else {
        out(&mid)?;
    }
    if !args.wait {
        return Ok(());
    }
    let path = format!("/channels/{cid}/messages/{}", seg(&mid));
    let deadline = Instant::now() + Duration::from_secs_f64(args.timeout.clamp(0.0, 86400.0));
    loop {
        let status = client.get(&path).await?;
        if let Some(event) = status["events"].as_array().and_then(|e| e.first()) {
            let kind = event["event_type"].as_str().unwrap_or("?");
            if args.json {
                out(pretty(event))?;
            } else {
                let mut line = match event["timestamp"].as_str() {
                    Some(t) => format!("{kind} {t} UTC"),
                    None => kind.to_string(),
                };
                if let Some(d) = event["event_details"].as_object().filter(|d| !d.is_empty()) {
                    line.push_str(&format!(" {}", Value::Object(d.clone())));
                }
                out(line.trim_end())?;
            }
            return match kind {
                "rejected" | "delivery_failed" => Err(Error::Other(format!(
                    "message {mid}: {kind}{}",
                    event["event_details"]["reason"]
                        .as_str()
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default()
                ))),
                _ => Ok(()),
            };
        }
        if Instant::now() >= deadline {
            return Err(Error::Other(format!(
                "message {mid}: no event within {} s",
                args.timeout
            )));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
