//! Tests of the `shopchat` binary as a user runs it, on the real models.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod checks;
mod harness;
mod models;
mod search;
mod served;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shopchat(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_shopchat"))
        .args(args)
        .current_dir(workspace())
        .env("SHOPCHAT_MODELS_DIR", workspace().join("models"))
        .output()
        .expect("the binary runs")
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The demo shop indexed once (with sentence vectors) for all tests here.
fn demo_data_dir() -> &'static Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let output = shopchat(&["index", "--data-dir", dir.path().to_str().unwrap()]);
        let report = stdout(&output);
        assert!(report.contains("with vectors"), "{report}");
        dir
    })
    .path()
}

fn search(query: &str) -> (String, Vec<serde_json::Value>) {
    let data = demo_data_dir().to_str().unwrap();
    let text = stdout(&shopchat(&["search", "--data-dir", data, "-k", "5", query]));
    let json = stdout(&shopchat(&["search", "--data-dir", data, "--json", "-k", "5", query]));
    (text, json.lines().map(|l| serde_json::from_str(l).unwrap()).collect())
}

/// `shopchat` with the demo index and SmolLM2 alone (Chinese is answered
/// from passage text), as the shipped suites run in CI.
fn harness(args: &[&str]) -> Output {
    let data = demo_data_dir().to_str().unwrap();
    let mut all = args.to_vec();
    all.extend(["--data-dir", data, "--extra-model", "none"]);
    shopchat(&all)
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
