//! A short quorum chaos run (12 s after the ~3 s warm-up) through the real binary: five
//! memcached servers behind fault proxies, every key on all of them
//! (`options.mode=quorum`), injected faults including restarts into quarantine, the
//! checker's verdict and the SVG timeline.

use std::process::Command;

use serde_json::Value;

#[test]
fn short_quorum_chaos_run_has_no_violations() {
    let svg = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-quorum-short.svg");
    let _ = std::fs::remove_file(&svg);
    let output = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["12", "--seed=11", "--mode=quorum"])
        .arg(format!("--svg={}", svg.display()))
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
    assert_eq!(summary["mode"], "quorum", "{summary}");
    assert_eq!(summary["check"]["mode"], "quorum", "{summary}");
    assert_eq!(n(&["servers"]), 5, "{summary}");
    // Must-be-zero figures; in quorum mode no fault explains a both-valid overlap.
    assert_eq!(n(&["check", "overlaps", "both_valid"]), 0, "{summary}");
    assert_eq!(n(&["overlaps_unexplained"]), 0, "{summary}");
    assert_eq!(n(&["stale_writes_accepted"]), 0, "{summary}");
    assert_eq!(n(&["false_acquires"]), 0, "{summary}");
    assert_eq!(n(&["hangs"]), 0, "{summary}");
    assert_eq!(n(&["lost_without_signal"]), 0, "{summary}");
    assert_eq!(n(&["unparsed_lines"]), 0, "{summary}");
    // The run really ran: the warm-up waited out the quarantine, work was done, faults hit.
    assert!(n(&["quorum", "warm_up_ms"]) >= 2_900, "{summary}");
    assert!(n(&["operations"]) > 100, "{summary}");
    assert!(n(&["acquisitions"]) > 10, "{summary}");
    assert!(n(&["faults_total"]) >= 3, "{summary}");
    assert!(n(&["check", "writes", "accepted"]) > 10, "{summary}");
    assert_eq!(summary["ok"], Value::Bool(true), "{summary}");
    assert!(
        output.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        output.status
    );
    // The timeline: one bar per holding.
    let text = std::fs::read_to_string(&svg).expect("the SVG timeline was written");
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    assert_eq!(
        text.matches(r#"class="hold""#).count() as u64,
        n(&["check", "holders"])
    );
    assert_eq!(summary["svg"], svg.display().to_string());
}

#[test]
fn quorum_needs_three_servers() {
    let status = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(["--mode=quorum", "--servers=2"])
        .output()
        .expect("run");
    assert_eq!(status.status.code(), Some(2));
    let status = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .arg("--mode=paxos")
        .output()
        .expect("run");
    assert_eq!(status.status.code(), Some(2));
}
