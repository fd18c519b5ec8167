//! The models against the reference implementation, PyPI `marketing-attribution-models`.
//!
//! Installs the pinned reference with `tests/reference/fetch.sh` (a venv under the target dir;
//! the first run downloads about 180 MB of wheels, a minute here, later runs find it installed) and runs
//! `tests/reference/compare.py` against this build's binary on 1,000 seeded random journeys.
//! The figures are written straight to stderr, so they show with or without `--nocapture`.
//!
//! It needs python3 with its venv module and pip, and the package registry on the first run, so
//! it is ignored unless asked for (`cargo test -- --include-ignored`); when it runs without
//! them, it fails with a message saying what is missing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

const MODELS: [&str; 7] = [
    "model=last_click ",
    "model=first_click ",
    "model=linear ",
    "model=position_based ",
    "model=time_decay half_life_hours=168 ",
    "model=time_decay half_life_hours=24 ",
    "model=time_decay half_life_hours=168 input=session ",
];

/// Written past libtest's capture: the figures are the point of this test.
fn report(text: &str) {
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// Fails the test: the reference cannot be installed here, and why.
fn unavailable(why: &str) -> ! {
    panic!(
        "this test needs the attribution reference, PyPI marketing-attribution-models, installed by \
         tests/reference/fetch.sh into a venv under the target dir: {why}\nInstall python3 with its venv module \
         and pip (on Debian: apt-get install python3-venv python3-pip) and let the first run reach pypi.org, \
         or run cargo test without --include-ignored: it lists this test as ignored"
    )
}

#[test]
#[ignore = "needs the PyPI attribution reference (tests/reference/fetch.sh installs it: python3, venv, pip); run with --include-ignored"]
fn models_agree_with_the_reference_implementation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let binary = Path::new(env!("CARGO_BIN_EXE_clickgate"));
    // The binary sits in <target>/<profile>/; the venv goes beside the profiles.
    let target = binary.parent().and_then(Path::parent).map_or_else(|| root.join("target"), Path::to_path_buf);
    let venv: PathBuf = target.join("reference-venv");

    let fetch = Command::new("bash").arg(root.join("tests/reference/fetch.sh")).env("CLICKGATE_REFERENCE_VENV", &venv).output();
    let fetch = match fetch {
        Ok(out) => out,
        Err(e) => unavailable(&format!("cannot run bash: {e}")),
    };
    report(&String::from_utf8_lossy(&fetch.stdout));
    let fetch_err = String::from_utf8_lossy(&fetch.stderr);
    match fetch.status.code() {
        Some(0) => {}
        Some(3) | Some(4) => unavailable(&format!("fetch.sh could not install it:\n{fetch_err}")),
        code => panic!("fetch.sh failed ({code:?}):\n{fetch_err}"),
    }

    let compare = Command::new(venv.join("bin/python"))
        .arg(root.join("tests/reference/compare.py"))
        .arg(binary)
        .arg("--journeys")
        .arg("1000")
        .arg("-v")
        .output()
        .expect("run compare.py in the reference venv");
    let stdout = String::from_utf8_lossy(&compare.stdout);
    let stderr = String::from_utf8_lossy(&compare.stderr);
    report(&format!("{stdout}{stderr}"));
    assert!(compare.status.success(), "compare.py found differences over one minor unit per touch:\n{stdout}{stderr}");

    let summaries: Vec<&str> = stdout.lines().filter(|l| l.starts_with("model=")).collect();
    assert_eq!(summaries.len(), MODELS.len(), "one summary per model run:\n{stdout}");
    for (line, model) in summaries.iter().zip(MODELS) {
        assert!(line.starts_with(model), "expected {model:?} first, got {line:?}");
        assert!(line.contains(" journeys=1000 ") && line.ends_with(" ok"), "{line}");
    }
}
