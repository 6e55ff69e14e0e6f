//! Runs the independent Junebug conformance suite (`../shared/conformance`, Python) against a
//! real hornbill on the embedded default.

mod common;
use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn junebug_conformance_suite_passes() {
    let suite = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/conformance");
    assert!(
        suite.join("conftest.py").exists(),
        "the conformance suite is expected at {}",
        suite.display()
    );
    let have = Command::new("python3")
        .args(["-c", "import pytest, requests"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !have {
        let ok = Command::new("python3")
            .args(["-m", "pip", "install", "-q", "-r"])
            .arg(suite.join("requirements.txt"))
            .status()
            .expect("python3 and pip are needed for the conformance suite")
            .success();
        assert!(ok, "installing the conformance suite's requirements failed");
    }
    let server = Server::start(FAST_WEBHOOKS);
    let out = Command::new("python3")
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rfE"])
        .arg(&suite)
        .env("HORNBILL_URL", &server.url)
        .output()
        .expect("run pytest");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "conformance suite failed:\n{stdout}");
    assert!(stdout.contains(" passed"), "{stdout}");
    assert!(!stdout.contains("failed"), "{stdout}");
}
