//! `hornbill channels ...`: list, show, create, restart and delete channels (Junebug's
//! endpoints 1-6).

use super::{Client, Error, out, pretty, seg};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::path::PathBuf;

pub const CHANNELS_EXAMPLES: &str = "\
Examples:
  hornbill channels list
  hornbill channels show CID
  hornbill channels create --file channel.toml
  hornbill channels delete CID

A channel file is the body of POST /channels/, as JSON or TOML, e.g.:
  type = \"telnet\"
  mo_url = \"http://127.0.0.1:8000/inbound\"
  [config]
  twisted_endpoint = \"tcp:9002\"
  to_addr = \"*120#\"";

#[derive(Args)]
pub struct ChannelsArgs {
    #[command(subcommand)]
    command: ChannelsCommand,
}

#[derive(Subcommand)]
enum ChannelsCommand {
    /// One line per channel: id, type, label, status and queue length.
    List {
        /// The channel objects as a JSON array instead.
        #[arg(long)]
        json: bool,
    },
    /// A channel's object (config with secrets redacted, status, rates) as JSON.
    Show {
        /// The channel's id.
        id: String,
    },
    /// Create a channel from a JSON or TOML file; prints the new channel's id.
    #[command(after_help = CHANNELS_EXAMPLES)]
    Create {
        /// The channel: Junebug's create body (type, config, mo_url, label, ...). `-` reads
        /// stdin. A `.toml` file is TOML, a `.json` file JSON; any other is tried as both.
        #[arg(long, short, value_name = "FILE")]
        file: PathBuf,
        /// Print the created channel's object instead of its id.
        #[arg(long)]
        json: bool,
    },
    /// Restart a channel's transport.
    Restart {
        /// The channel's id.
        id: String,
    },
    /// Delete a channel (its queued messages go with it).
    Delete {
        /// The channel's id.
        id: String,
    },
}

pub async fn run(client: &Client, args: ChannelsArgs) -> Result<(), Error> {
    match args.command {
        ChannelsCommand::List { json } => list(client, json).await,
        ChannelsCommand::Show { id } => out(pretty(
            &client.get(&format!("/channels/{}", seg(&id))).await?,
        )),
        ChannelsCommand::Create { file, json } => {
            let body = read_body(&file)?;
            let created = client.post("/channels/", &body).await?;
            if json {
                out(pretty(&created))
            } else {
                out(created["id"].as_str().unwrap_or_default())
            }
        }
        ChannelsCommand::Restart { id } => {
            client
                .post(&format!("/channels/{}/restart", seg(&id)), &Value::Null)
                .await?;
            out(format!("channel {id} restarted"))
        }
        ChannelsCommand::Delete { id } => {
            client.delete(&format!("/channels/{}", seg(&id))).await?;
            out(format!("channel {id} deleted"))
        }
    }
}

async fn list(client: &Client, json: bool) -> Result<(), Error> {
    let ids: Vec<String> = match client.get("/channels/").await? {
        Value::Array(ids) => ids
            .iter()
            .filter_map(|v| v.as_str().map(str::to_string))
            .collect(),
        other => {
            return Err(Error::Other(format!(
                "GET /channels/: expected a list of ids, the server gave {other}"
            )));
        }
    };
    let reads = ids
        .iter()
        .map(|id| async move { client.get(&format!("/channels/{}", seg(id))).await });
    let mut channels = Vec::new();
    for read in futures::future::join_all(reads).await {
        match read {
            Ok(ch) => channels.push(ch),
            // Deleted between the list and the read.
            Err(Error::Api(f)) if f.status == 404 && !f.is_no_route() => {}
            Err(e) => return Err(e),
        }
    }
    if json {
        return out(pretty(&Value::Array(channels)));
    }
    if channels.is_empty() {
        return out("No channels.");
    }
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    };
    let rows: Vec<[String; 5]> = channels
        .iter()
        .map(|ch| {
            [
                text(&ch["id"]),
                text(&ch["type"]),
                ch["label"].as_str().unwrap_or("").to_string(),
                text(&ch["status"]["status"]),
                ch["status"]
                    .get("queue_length")
                    .map(text)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["ID", "TYPE", "LABEL", "STATUS", "QUEUE"];
    let mut widths = header.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            if i == 4 {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}  "));
            }
        }
        s.trim_end().to_string()
    };
    out(line(header))?;
    for row in &rows {
        out(line([&row[0], &row[1], &row[2], &row[3], &row[4]]))?;
    }
    Ok(())
}

/// Reads a channel body: JSON or TOML, by the file's extension or by trying both.
pub fn read_body(file: &PathBuf) -> Result<Value, Error> {
    let shown = file.display();
    let text = if file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
            .map_err(|e| Error::Other(format!("cannot read stdin: {e}")))?
    } else {
        std::fs::read_to_string(file)
            .map_err(|e| Error::Other(format!("cannot read {shown}: {e}")))?
    };
    let ext = file
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let body = match ext.as_deref() {
        Some("json") => parse_json(&text).map_err(|e| format!("{shown} is not JSON: {e}")),
        Some("toml") => parse_toml(&text).map_err(|e| format!("{shown} is not TOML: {e}")),
        _ => parse_json(&text).or_else(|json| {
            parse_toml(&text)
                .map_err(|toml| format!("{shown} is neither JSON ({json}) nor TOML ({toml})"))
        }),
    }
    .map_err(Error::Other)?;
    if !body.is_object() {
        return Err(Error::Other(format!(
            "{shown}: a channel is an object (a table), not {body}"
        )));
    }
    Ok(body)
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

fn parse_toml(text: &str) -> Result<Value, String> {
    config::Config::builder()
        .add_source(config::File::from_str(text, config::FileFormat::Toml))
        .build()
        .and_then(|c| c.try_deserialize::<Value>())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn toml_and_json_bodies_read_alike() {
        let toml = parse_toml(
            "type = \"telnet\"\nrate_limit_count = 3\nmo_url = \"http://x/mo\"\n[config]\ntwisted_endpoint = \"tcp:9002\"\nto_addr = \"*120#\"\n",
        )
        .unwrap();
        assert_eq!(
            toml,
            json!({"type": "telnet", "rate_limit_count": 3, "mo_url": "http://x/mo",
                   "config": {"twisted_endpoint": "tcp:9002", "to_addr": "*120#"}})
        );
        assert!(parse_json("type = 1").is_err());
    }
}
