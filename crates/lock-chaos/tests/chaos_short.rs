//! A short chaos run (12 s) through the real binary: worker processes, real memcached
//! servers behind fault proxies, injected faults, and the checker's verdict.

use std::process::Command;

use serde_json::Value;

#[test]
fn short_chaos_run_has_no_violations() {
    let output = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["12", "--seed=11"])
        .output()
        .expect("run the chaos binary");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no summary; stderr:\n{stderr}"));
    let n = |path: &[&str]| -> u64 {
        let mut v = &summary;
        for p in path {
            v = &v[*p];
        }
        v.as_u64()
            .unwrap_or_else(|| panic!("{path:?} missing in {summary}"))
    };
    // Must-be-zero figures.
    assert_eq!(n(&["overlaps_unexplained"]), 0, "{summary}");
    assert_eq!(n(&["stale_writes_accepted"]), 0, "{summary}");
    assert_eq!(n(&["false_acquires"]), 0, "{summary}");
    assert_eq!(n(&["hangs"]), 0, "{summary}");
    assert_eq!(n(&["lost_without_signal"]), 0, "{summary}");
    assert_eq!(n(&["unparsed_lines"]), 0, "{summary}");
    // The run really ran: work was done and faults were injected.
    assert!(n(&["operations"]) > 100, "{summary}");
    assert!(n(&["acquisitions"]) > 10, "{summary}");
    assert!(n(&["faults_total"]) >= 3, "{summary}");
    assert!(n(&["check", "holders"]) > 10, "{summary}");
    assert!(n(&["check", "writes", "accepted"]) > 10, "{summary}");
    assert_eq!(summary["ok"], Value::Bool(true), "{summary}");
    assert!(
        output.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        output.status
    );
}

#[test]
fn bad_arguments_exit_with_status_2() {
    let status = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .arg("--servers=1")
        .output()
        .expect("run");
    assert_eq!(status.status.code(), Some(2));
    let status = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["--worker", "--id=nope"])
        .output()
        .expect("run");
    assert_eq!(status.status.code(), Some(2));
}
