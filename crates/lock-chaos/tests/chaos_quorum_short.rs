//! A short quorum chaos run (12 s after the ~3 s warm-up) through the real binary: five
//! memcached servers behind fault proxies, every key on all of them
//! (`options.mode=quorum`), injected faults including restarts into quarantine, the
//! checker's verdict and the SVG timeline.

mod support;

use support::{ChaosRun, assert_usage_error};

#[test]
fn short_quorum_chaos_run_has_no_violations() {
    let svg = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-quorum-short.svg");
    let _ = std::fs::remove_file(&svg);
    let run = ChaosRun::new([
        "12".to_owned(),
        "--seed=11".to_owned(),
        "--mode=quorum".to_owned(),
        format!("--svg={}", svg.display()),
    ]);
    let summary = &run.summary;
    assert_eq!(summary["mode"], "quorum", "{summary}");
    assert_eq!(summary["check"]["mode"], "quorum", "{summary}");
    assert_eq!(run.n(&["servers"]), 5, "{summary}");
    // In quorum mode no fault explains a both-valid overlap.
    assert_eq!(run.n(&["check", "overlaps", "both_valid"]), 0, "{summary}");
    // The warm-up waited out the quarantine.
    assert!(run.n(&["quorum", "warm_up_ms"]) >= 2_900, "{summary}");
    run.assert_clean_and_busy();
    // The timeline: one bar per holding.
    let text = std::fs::read_to_string(&svg).expect("the SVG timeline was written");
    assert!(text.starts_with("<svg") && text.trim_end().ends_with("</svg>"));
    assert_eq!(
        text.matches(r#"class="hold""#).count() as u64,
        run.n(&["check", "holders"])
    );
    assert_eq!(summary["svg"], svg.display().to_string());
}

#[test]
fn quorum_needs_three_servers() {
    assert_usage_error(&["--mode=quorum", "--servers=2"]);
    assert_usage_error(&["--mode=paxos"]);
}
