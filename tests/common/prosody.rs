//! A real Prosody (Debian's `prosody`) per test, on a free loopback port with its config and
//! data in a temporary folder, and chat users on it as tokio-xmpp clients.

use super::{TempDir, free_port};
use futures::StreamExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_xmpp::connect::DnsConfig;
use tokio_xmpp::parsers::iq::Iq;
use tokio_xmpp::parsers::jid::{BareJid, Jid};
use tokio_xmpp::parsers::message::{Lang, Message, MessageType};
use tokio_xmpp::parsers::presence::Presence;
use tokio_xmpp::parsers::roster::Roster;
use tokio_xmpp::xmlstream::Timeouts;
use tokio_xmpp::{Client, Event, Stanza};

/// The XMPP domain every test server hosts.
pub const DOMAIN: &str = "localhost";

pub struct Prosody {
    child: Option<Child>,
    pub port: u16,
    config: PathBuf,
    pub dir: TempDir,
}

/// TLS for the server: (certificate, key) PEM files for `localhost`.
pub struct Tls {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Prosody {
    /// A server allowing plaintext logins (loopback only), no TLS.
    pub fn start() -> Prosody {
        Prosody::start_with(None)
    }

    /// With `tls`, StartTLS is offered (and required) with that certificate.
    pub fn start_with(tls: Option<&Tls>) -> Prosody {
        let dir = TempDir::new();
        let port = free_port();
        let d = dir.0.display();
        let (tls_module, tls_config) = match tls {
            Some(t) => (
                "\"tls\";",
                format!(
                    "c2s_require_encryption = true\nssl = {{ certificate = \"{}\"; key = \"{}\"; }}\n",
                    t.cert.display(),
                    t.key.display()
                ),
            ),
            None => (
                "",
                "c2s_require_encryption = false\nallow_unencrypted_plain_auth = true\n".into(),
            ),
        };
        std::fs::create_dir_all(dir.0.join("data")).unwrap();
        std::fs::create_dir_all(dir.0.join("certs")).unwrap();
        // Prosody refuses to run as root unless told; tests run as root in CI containers.
        let config = format!(
            r#"run_as_root = true
pidfile = "{d}/prosody.pid"
data_path = "{d}/data"
certificates = "{d}/certs"
plugin_paths = {{}}
modules_enabled = {{ "roster"; "saslauth"; "disco"; "ping"; "posix"; "offline"; {tls_module} }}
modules_disabled = {{ "s2s" }}
c2s_ports = {{ {port} }}
c2s_interfaces = {{ "127.0.0.1" }}
c2s_direct_tls_ports = {{}}
s2s_ports = {{}}
s2s_direct_tls_ports = {{}}
http_ports = {{}}
https_ports = {{}}
authentication = "internal_hashed"
{tls_config}log = {{ info = "{d}/prosody.log" }}
VirtualHost "{DOMAIN}"
"#
        );
        let path = dir.0.join("prosody.cfg.lua");
        std::fs::write(&path, config).unwrap();
        let mut p = Prosody {
            child: None,
            port,
            config: path,
            dir,
        };
        p.run();
        p
    }

    /// Starts the process (again) and waits until it takes connections.
    pub fn run(&mut self) {
        let child = Command::new("prosody")
            .arg("--config")
            .arg(&self.config)
            .arg("-F")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("prosody (Debian package prosody; script/test installs it)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "prosody did not listen on {}; its log:\n{}",
                self.port,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the process (SIGTERM, then SIGKILL after 10 s) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            self.signal_pid(child.id(), "TERM");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    /// Sends `signal` (`STOP`, `CONT`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.as_ref().expect("prosody runs").id();
        self.signal_pid(pid, signal);
    }

    fn signal_pid(&self, pid: u32, signal: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{signal} {pid} failed");
    }

    /// Creates an account (`prosodyctl register`).
    pub fn register(&self, user: &str, password: &str) {
        let out = Command::new("prosodyctl")
            .arg("--config")
            .arg(&self.config)
            .args(["register", user, DOMAIN, password])
            .output()
            .expect("prosodyctl");
        assert!(
            out.status.success(),
            "prosodyctl register {user} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("prosody.log")).unwrap_or_default()
    }
}

impl Drop for Prosody {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A self-signed certificate for `localhost` (openssl), in `dir`.
pub fn self_signed(dir: &std::path::Path) -> Tls {
    let cert = dir.join("localhost.crt");
    let key = dir.join("localhost.key");
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
        ])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    assert!(ok, "openssl could not make a certificate");
    Tls { cert, key }
}

/// A user chatting from a tokio-xmpp client: what it receives is kept, stanzas are sent
/// through its task.
pub struct ChatUser {
    pub jid: BareJid,
    out: mpsc::UnboundedSender<Stanza>,
    pub seen: Arc<Mutex<Vec<(Instant, Stanza)>>>,
    online: Arc<Mutex<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl ChatUser {
    /// Logs in as `user@localhost` (resource `phone`) on `port`, announces presence, and
    /// waits until online.
    pub async fn connect(port: u16, user: &str, password: &str) -> ChatUser {
        let jid = Jid::new(&format!("{user}@{DOMAIN}/phone")).unwrap();
        let mut client = Client::new_plaintext(
            jid.clone(),
            password.to_string(),
            DnsConfig::addr(&format!("127.0.0.1:{port}")),
            Timeouts::tight(),
        );
        let (out, mut outgoing) = mpsc::unbounded_channel::<Stanza>();
        let seen: Arc<Mutex<Vec<(Instant, Stanza)>>> = Arc::default();
        let online: Arc<Mutex<bool>> = Arc::default();
        let (seen2, online2) = (seen.clone(), online.clone());
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    event = client.next() => match event {
                        Some(Event::Online { .. }) => {
                            // The roster first: the server tells subscription changes only
                            // to resources that asked for it (RFC 6121 2.1.6).
                            let roster = Iq::from_get("roster-1", Roster { ver: None, items: vec![] });
                            let _ = client.send_stanza(roster.into()).await;
                            let _ = client.send_stanza(Presence::available().into()).await;
                            *online2.lock().unwrap() = true;
                        }
                        Some(Event::Stanza(s)) => seen2.lock().unwrap().push((Instant::now(), s)),
                        Some(Event::Disconnected(_)) => *online2.lock().unwrap() = false,
                        None => return,
                    },
                    stanza = outgoing.recv() => match stanza {
                        Some(s) => {
                            let _ = client.send_stanza(s).await;
                        }
                        None => {
                            let _ = client.send_end().await;
                            return;
                        }
                    },
                }
            }
        });
        let user = ChatUser {
            jid: jid.to_bare(),
            out,
            seen,
            online,
            task,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !*user.online.lock().unwrap() {
            assert!(
                Instant::now() < deadline,
                "{} did not come online",
                user.jid
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        user
    }

    pub fn send(&self, stanza: impl Into<Stanza>) {
        self.out
            .send(stanza.into())
            .expect("the user's client runs");
    }

    /// A chat message with `body` to `to`.
    pub fn say(&self, to: &str, body: &str) {
        let msg = Message::chat(Some(Jid::new(to).unwrap())).with_body(Lang::new(), body.into());
        self.send(msg);
    }

    /// The chat messages received with a body, in order: (when, from, body).
    pub fn messages(&self) -> Vec<(Instant, String, String)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(at, s)| match s {
                Stanza::Message(m) if m.type_ != MessageType::Error => {
                    let body = m.get_best_body(vec![])?.1.clone();
                    let from = m.from.as_ref().map(|f| f.to_string()).unwrap_or_default();
                    Some((*at, from, body))
                }
                _ => None,
            })
            .collect()
    }

    /// Waits for a chat message with `body`: (when, from).
    pub async fn wait_message(&self, body: &str) -> (Instant, String) {
        super::eventually(&format!("{} receiving {body:?}", self.jid), || async {
            self.messages()
                .into_iter()
                .find(|(_, _, b)| b == body)
                .map(|(at, from, _)| (at, from))
        })
        .await
    }

    /// The presences received.
    pub fn presences(&self) -> Vec<Presence> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, s)| match s {
                Stanza::Presence(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    /// Waits for a presence that `pred` accepts.
    pub async fn wait_presence(&self, what: &str, pred: impl Fn(&Presence) -> bool) -> Presence {
        let deadline = Instant::now() + super::WAIT + super::WAIT;
        loop {
            if let Some(p) = self.presences().into_iter().find(|p| pred(p)) {
                return p;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; {} received {:#?}",
                self.jid,
                self.presences()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

impl Drop for ChatUser {
    fn drop(&mut self) {
        self.task.abort();
    }
}
