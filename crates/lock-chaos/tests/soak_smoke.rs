//! A 5-second smoke of the soak binary: samples come out, the summary is complete, and
//! descriptors and the lease table stay bounded.

use std::process::Command;

use serde_json::Value;

#[test]
fn soak_smoke_five_seconds() {
    let output = Command::new(env!("CARGO_BIN_EXE_soak"))
        .args(["5", "--interval-ms=1000", "--tasks=4"])
        .output()
        .expect("run the soak binary");
    assert!(output.status.success(), "{output:?}");
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    let samples = lines.iter().filter(|l| l["t"] == "sample").count();
    assert!(samples >= 5, "{lines:?}");
    let summary = lines.last().expect("summary");
    assert_eq!(summary["summary"], "soak");
    let n = |k: &str| {
        summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{k} in {summary}"))
    };
    assert!(n("operations") > 0);
    assert!(n("rss_kib_end") > 0);
    // Connections are pooled: descriptors do not grow with operations.
    assert!(n("open_fds_end") <= n("open_fds_start") + 10, "{summary}");
    // The lease table is bounded by options.max_size (1000).
    assert!(n("held_count_max") <= 1000, "{summary}");
    assert_eq!(summary["errors"], serde_json::json!({}), "{summary}");
}
