//! A short chaos run (12 s) through the real binary: worker processes, real memcached
//! servers behind fault proxies, injected faults, and the checker's verdict.

mod support;

use support::{ChaosRun, assert_usage_error};

#[test]
fn short_chaos_run_has_no_violations() {
    let run = ChaosRun::new(["12", "--seed=11"]);
    run.assert_clean_and_busy();
    assert!(run.n(&["check", "holders"]) > 10, "{}", run.summary);
}

#[test]
fn bad_arguments_exit_with_status_2() {
    assert_usage_error(&["--servers=1"]);
    assert_usage_error(&["--worker", "--id=nope"]);
}
