//! A real IRC server for the `irc` channel type's tests: ngircd (Debian package `ngircd`;
//! script/test installs it) on a free loopback port with a config file of its own, run in
//! the foreground (`ngircd -n -f FILE`; as root it drops to `nobody` by itself), and IRC users
//! on plain TCP line clients.
#![allow(dead_code)]

use super::{TempDir, WAIT, free_port};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An ngircd process, killed when dropped.
pub struct Ngircd {
    pub port: u16,
    /// The TLS port, when started `with_tls`.
    pub tls_port: Option<u16>,
    /// The test CA that signed its certificate, when started `with_tls`.
    pub ca: Option<std::path::PathBuf>,
    child: Option<Child>,
    conf: std::path::PathBuf,
    _dir: TempDir,
}

impl Ngircd {
    /// On a free port: no password, flood penalties off (`MaxPenaltyTime = 0`), so that what
    /// holds a flood back is hornbill's rate limit, not the server.
    pub fn start() -> Ngircd {
        Ngircd::with_password(None)
    }

    /// With a server password (`[Global] Password`): a client must send `PASS` with it.
    pub fn with_password(password: Option<&str>) -> Ngircd {
        Ngircd::new(password, false)
    }

    /// With a TLS port too (`tls_port`), its certificate (for `localhost` and 127.0.0.1)
    /// signed by a test CA (`ca`) made here with the `openssl` command.
    pub fn with_tls() -> Ngircd {
        Ngircd::new(None, true)
    }

    fn new(password: Option<&str>, tls: bool) -> Ngircd {
        let dir = TempDir::new();
        let port = free_port();
        let conf = dir.0.join("ngircd.conf");
        let password = password
            .map(|p| format!("Password = {p}\n"))
            .unwrap_or_default();
        let mut text = format!(
            "[Global]\nName = irc.hornbill.test\nInfo = hornbill test server\n\
             AdminInfo1 = hornbill\nAdminInfo2 = tests\nAdminEMail = nobody@example.com\n\
             Listen = 127.0.0.1\nPorts = {port}\nMotdPhrase = hornbill test\n{password}\
             [Limits]\nMaxConnectionsIP = 0\nMaxPenaltyTime = 0\nMaxJoins = 0\n\
             [Options]\nPAM = no\nDNS = no\nIdent = no\n"
        );
        let (mut tls_port, mut ca) = (None, None);
        if tls {
            let p = free_port();
            ca = Some(test_certificates(&dir.0));
            text.push_str(&format!(
                "[SSL]\nCertFile = {}\nKeyFile = {}\nPorts = {p}\n",
                dir.0.join("cert.pem").display(),
                dir.0.join("key.pem").display()
            ));
            tls_port = Some(p);
        }
        std::fs::write(&conf, text).unwrap();
        // Readable by the user ngircd drops to.
        let _ =
            std::fs::set_permissions(&dir.0, std::os::unix::fs::PermissionsExt::from_mode(0o755));
        let mut server = Ngircd {
            port,
            tls_port,
            ca,
            child: None,
            conf,
            _dir: dir,
        };
        server.run();
        server
    }

    fn run(&mut self) {
        // Debian puts it in /usr/sbin, which a user's PATH may lack.
        let binary = if std::path::Path::new("/usr/sbin/ngircd").exists() {
            "/usr/sbin/ngircd"
        } else {
            "ngircd"
        };
        let child = Command::new(binary)
            .arg("-n")
            .arg("-f")
            .arg(&self.conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ngircd (apt-get install ngircd)");
        self.child = Some(child);
        let end = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < end,
                "ngircd did not listen on {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// kill -9: every connection drops at once.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Started again on the same port.
    pub fn restart(&mut self) {
        self.kill();
        self.run();
    }
}

impl Drop for Ngircd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A test CA (`ca.pem`, returned) and a certificate it signed for `localhost` and 127.0.0.1
/// (`cert.pem`, `key.pem`) in `dir`, made with the `openssl` command.
fn test_certificates(dir: &std::path::Path) -> std::path::PathBuf {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca-key.pem",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=hornbill test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca-key.pem",
        "-CAcreateserial",
        "-out",
        "cert.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    for f in ["ca.pem", "cert.pem", "key.pem"] {
        let _ = std::fs::set_permissions(
            dir.join(f),
            std::os::unix::fs::PermissionsExt::from_mode(0o644),
        );
    }
    dir.join("ca.pem")
}

/// A person on IRC: a line client that signs on and keeps every line it receives (with when
/// it arrived). It answers no PING: ngircd sends one only after two minutes of silence.
pub struct IrcUser {
    pub nick: String,
    writer: tokio::net::tcp::OwnedWriteHalf,
    pub lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl IrcUser {
    /// Connects as `nick` and waits for the server's welcome.
    pub async fn connect(port: u16, nick: &str) -> IrcUser {
        IrcUser::sign_on(port, nick, None).await
    }

    /// The same, with the server's password.
    pub async fn connect_with_password(port: u16, nick: &str, password: &str) -> IrcUser {
        IrcUser::sign_on(port, nick, Some(password)).await
    }

    async fn sign_on(port: u16, nick: &str, password: Option<&str>) -> IrcUser {
        let stream = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("connect to ngircd");
        let (reader, writer) = stream.into_split();
        let lines: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let l2 = lines.clone();
        tokio::spawn(async move {
            let mut r = tokio::io::BufReader::new(reader).lines();
            while let Ok(Some(line)) = r.next_line().await {
                let line = line.trim_end().to_string();
                l2.lock().unwrap().push((Instant::now(), line));
            }
        });
        let mut user = IrcUser {
            nick: nick.to_string(),
            writer,
            lines,
        };
        if let Some(p) = password {
            user.raw(&format!("PASS {p}")).await;
        }
        user.raw(&format!("NICK {nick}")).await;
        user.raw(&format!("USER {nick} 0 * :test user")).await;
        user.wait(&format!("welcome of {nick}"), |l| l.contains(" 001 "))
            .await;
        user
    }

    pub async fn raw(&mut self, line: &str) {
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .unwrap();
    }

    pub async fn privmsg(&mut self, target: &str, text: &str) {
        self.raw(&format!("PRIVMSG {target} :{text}")).await;
    }

    /// Joins a channel and waits for the end of its names list.
    pub async fn join(&mut self, channel: &str) {
        self.raw(&format!("JOIN {channel}")).await;
        let end = format!(" 366 {} {channel} ", self.nick);
        self.wait(&format!("{} in {channel}", self.nick), |l| l.contains(&end))
            .await;
    }

    /// Waits for a line that satisfies `pred`; returns it and when it arrived.
    pub async fn wait(&self, what: &str, pred: impl Fn(&str) -> bool) -> (Instant, String) {
        let end = Instant::now() + WAIT + WAIT;
        loop {
            if let Some((at, l)) = self
                .lines
                .lock()
                .unwrap()
                .iter()
                .find(|(_, l)| pred(l))
                .cloned()
            {
                return (at, l);
            }
            assert!(
                Instant::now() < end,
                "{what}: never arrived; got {:#?}",
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// PRIVMSGs received from `from` to `target`: their text, with when each arrived.
    pub fn messages(&self, from: &str, target: &str) -> Vec<(Instant, String)> {
        let head = format!(":{from}!");
        let mid = format!(" PRIVMSG {target} :");
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, l)| l.starts_with(&head))
            .filter_map(|(at, l)| l.split_once(&mid).map(|(_, text)| (*at, text.to_string())))
            .collect()
    }

    /// Waits for a PRIVMSG from `from` to `target` with exactly `text`.
    pub async fn wait_message(&self, from: &str, target: &str, text: &str) -> Instant {
        let head = format!(":{from}!");
        let tail = format!(" PRIVMSG {target} :{text}");
        self.wait(&format!("{tail:?} from {from}"), |l| {
            l.starts_with(&head) && l.ends_with(&tail)
        })
        .await
        .0
    }

    pub fn received(&self) -> Vec<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }
}
