//! The repository's SMSC simulator (`tests/peers/smsc`, node-smpp) as a child process.

use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub struct Smsc {
    child: Child,
    pub smpp: u16,
    pub control: String,
}

impl Smsc {
    pub fn start(args: &[&str]) -> Smsc {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/peers/smsc");
        let ok = Command::new(dir.join("setup"))
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(
            ok,
            "the SMSC simulator's setup failed (node and npm are needed)"
        );
        let mut child = Command::new("node")
            .arg(dir.join("smsc.js"))
            .args(["--port", "0", "--control-port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "smsc listening smpp=127.0.0.1:PORT control=127.0.0.1:PORT"
        let field = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
                .to_string()
        };
        let smpp = field("smpp=").rsplit(':').next().unwrap().parse().unwrap();
        Smsc {
            child,
            smpp,
            control: format!("http://{}", field("control=")),
        }
    }

    pub async fn get(&self, path: &str) -> Value {
        reqwest::get(format!("{}{path}", self.control))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn post(&self, path: &str, body: Value) -> Value {
        reqwest::Client::new()
            .post(format!("{}{path}", self.control))
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null)
    }
}

impl Drop for Smsc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
