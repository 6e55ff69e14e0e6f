//! `hornbill cluster`: the membership table of a running server's cluster.

use super::{Client, Error, out};
use serde_json::Value;

pub const CLUSTER_EXAMPLES: &str = "Example:
  hornbill cluster --url http://node-1:8080";

pub async fn run(client: &Client) -> Result<(), Error> {
    let view = client.get("/cluster").await?;
    for line in table(&view, hornbill::message::now_secs()) {
        out(line)?;
    }
    Ok(())
}

/// The lines printed: a heading, then one line per node (the answering node marked `*`).
fn table(view: &Value, now: f64) -> Vec<String> {
    let me = view["node_id"].as_str().unwrap_or_default();
    let mut lines = vec![
        format!(
            "backend {}, lease ttl {} s, answered by {me}",
            view["backend"].as_str().unwrap_or("?"),
            view["lease_ttl"]
        ),
        format!(
            "  {:<28} {:<28} {:>9} {:>8} {:>7}",
            "NODE", "URL", "SEEN", "CHANNELS", "ROUTERS"
        ),
    ];
    for node in view["nodes"].as_array().into_iter().flatten() {
        let id = node["id"].as_str().unwrap_or_default();
        let count = |k: &str| node[k].as_array().map_or(0, Vec::len);
        let seen = node["last_seen"].as_f64().map_or("?".to_string(), |t| {
            format!("{:.1}s ago", (now - t).max(0.0))
        });
        lines.push(format!(
            "{} {:<28} {:<28} {:>9} {:>8} {:>7}",
            if id == me { "*" } else { " " },
            id,
            node["url"].as_str().unwrap_or_default(),
            seen,
            count("channels"),
            count("routers"),
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_line_per_node_the_answering_one_marked() {
        let view = json!({"node_id": "b:2", "backend": "redis", "lease_ttl": 10.0, "nodes": [
            {"id": "a:1", "url": "http://a:1", "last_seen": 99.0, "channels": ["x", "y"], "routers": []},
            {"id": "b:2", "url": "http://b:2", "last_seen": 100.0, "channels": ["z"], "routers": ["r"]},
        ]});
        let lines = table(&view, 100.5);
        assert_eq!(lines.len(), 4);
        assert!(lines[0].contains("backend redis") && lines[0].contains("answered by b:2"));
        assert!(lines[2].starts_with("  a:1") && lines[2].contains("1.5s ago"));
        assert!(lines[3].starts_with("* b:2"));
        assert!(lines[3].trim_end().ends_with("1       1"));
    }
}
