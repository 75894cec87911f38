//! The checker at CI bounds: safe with the quarantine and the write-back on; the expected
//! counterexamples with either switched off.

use lock_model::{Params, Violation, check};

/// N = 3, 2 clients, 1 acquire each, 1 restart, ttl 3 = max_ttl = quarantine, drift 1.
fn ci_bound() -> Params {
    Params {
        max_ticks: 3,
        max_delay: 0,
        ..Params::default()
    }
}

#[test]
fn quorum_mode_is_safe_at_the_ci_bound() {
    let params = ci_bound();
    params.validate().expect("valid bound");
    let report = check(&params);
    if let Some(trace) = &report.violation {
        panic!("unexpected violation:\n{trace}");
    }
    assert!(
        report.complete,
        "the whole bounded state space was explored"
    );
    assert!(
        report.states_explored > 10_000,
        "explored {} states",
        report.states_explored
    );
    assert!(report.max_depth > 10);
}

#[test]
fn without_quarantine_a_restart_in_the_intersection_breaks_mutual_exclusion() {
    let params = Params {
        quarantine_enabled: false,
        ..ci_bound()
    };
    let report = check(&params);
    let trace = report.violation.expect("a counterexample");
    assert!(
        matches!(trace.violation, Violation::MutualExclusion { .. }),
        "{trace}"
    );
    assert!(
        trace.steps.iter().any(|s| s.action.contains("restarts")),
        "{trace}"
    );
    println!("{trace}");
}

#[test]
fn without_write_back_a_later_grant_can_get_a_smaller_token() {
    // Counters on different servers differ once a request is processed a tick late.
    let params = Params {
        write_back: false,
        max_ticks: 2,
        max_delay: 1,
        clients: 1,
        acquires_per_client: 2,
        ..Params::default()
    };
    let report = check(&params);
    let trace = report.violation.expect("a counterexample");
    assert!(
        matches!(trace.violation, Violation::Fencing { .. }),
        "{trace}"
    );
    println!("{trace}");
}

#[test]
fn symmetry_reduction_keeps_the_verdicts() {
    for quarantine_enabled in [true, false] {
        let params = Params {
            quarantine_enabled,
            max_ticks: 1,
            max_delay: 0,
            ..Params::default()
        };
        let reduced = check(&params);
        let plain = check(&Params {
            symmetry: false,
            ..params.clone()
        });
        assert_eq!(
            reduced.violation.is_some(),
            plain.violation.is_some(),
            "quarantine {quarantine_enabled}"
        );
        assert_eq!(reduced.violation.is_some(), !quarantine_enabled);
        if quarantine_enabled {
            assert!(reduced.complete && plain.complete);
            assert!(reduced.states_explored * 4 < plain.states_explored);
        }
    }
}
