//! The checker on hand-made histories: each violation is caught, and each explanation is
//! honoured only when its conditions hold.

use lock_chaos::checker::{
    Fault, FaultKind, Holder, Mode, Write, check, check_mode, holder_from_json, holder_to_json,
};

const MS: u64 = 1_000_000;

fn holder(id: &str, start: u64, enter: u64, exit: u64, deadline: u64, valid: bool) -> Holder {
    Holder {
        id: id.into(),
        key: "k".into(),
        server: 0,
        acquire_start_ns: start * MS,
        enter_ns: enter * MS,
        exit_ns: exit * MS,
        deadline_ns: deadline * MS,
        valid_at_exit: valid,
        fencing_token: Some(1),
        ..Holder::default()
    }
}

fn write(holder: &str, token: u64, at: u64, accepted: bool) -> Write {
    Write {
        holder: holder.into(),
        key: "k".into(),
        token,
        at_ns: at * MS,
        accepted,
    }
}

/// A fault of `kind` on server 0 from `start` to `end` ms.
fn fault(kind: FaultKind, start: u64, end: u64) -> Fault {
    Fault {
        kind,
        target: Some(0),
        start_ns: start * MS,
        end_ns: end * MS,
    }
}

fn restart(start: u64, end: u64) -> Fault {
    fault(FaultKind::Restart, start, end)
}

/// a holds from 1 to 10 ms, then b from 12 to 20 ms, both valid to the end: no overlap.
fn sequential_valid_pair() -> [Holder; 2] {
    [
        holder("a", 0, 1, 10, 1000, true),
        holder("b", 11, 12, 20, 1000, true),
    ]
}

/// a holds from 1 to 100 ms and b from 51 to 60 ms, both valid to the end: an overlap.
fn overlapping_valid_pair() -> [Holder; 2] {
    [
        holder("a", 0, 1, 100, 1000, true),
        holder("b", 50, 51, 60, 1000, true),
    ]
}

/// a writes with token 5 at 2 ms, b with token 9 at `b_at` ms, then a again at 99 ms with
/// `late_token`, `late_accepted` or refused by the resource.
fn a_b_then_late_a(b_at: u64, late_token: u64, late_accepted: bool) -> [Write; 3] {
    [
        write("a", 5, 2, true),
        write("b", 9, b_at, true),
        write("a", late_token, 99, late_accepted),
    ]
}

/// a holder whose item was found missing on the server at 2 ms, right after it acquired.
fn missing_right_after_acquire() -> Holder {
    Holder {
        on_server: Some(false),
        on_server_checked_ns: 2 * MS,
        ..holder("a", 0, 1, 10, 1000, true)
    }
}

#[test]
fn sequential_holders_are_clean() {
    let [a, b] = sequential_valid_pair();
    let writes = [write("a", 1, 2, true), write("b", 2, 13, true)];
    let r = check(&[a, b], &writes, &[]);
    assert!(r.ok(), "{r:?}");
    assert_eq!(r.overlaps_total, 0);
    assert_eq!(r.writes_accepted, 2);
}

#[test]
fn overlap_of_two_valid_holders_without_a_fault_is_unexplained() {
    let [a, b] = overlapping_valid_pair();
    let r = check(&[a, b], &[], &[]);
    assert_eq!(r.overlaps_both_valid, 1);
    assert_eq!(r.overlaps_unexplained, 1);
    assert_eq!(r.false_acquires, 1, "b entered while a's lease was valid");
    assert!(!r.ok());
    assert!(!r.violations.is_empty());
}

#[test]
fn a_server_pause_does_not_explain_an_overlap() {
    let [a, b] = overlapping_valid_pair();
    let pause = fault(FaultKind::ServerPause, 20, 40);
    let r = check(&[a, b], &[], &[pause]);
    assert_eq!(r.overlaps_unexplained, 1);
}

#[test]
fn a_restart_explains_an_overlap_only_if_fencing_held() {
    let [a, b] = overlapping_valid_pair();
    // Fenced: a's late write was refused after b wrote.
    let fenced = a_b_then_late_a(52, 5, false);
    let r = check(&[a.clone(), b.clone()], &fenced, &[restart(20, 40)]);
    assert_eq!(
        (r.overlaps_explained, r.overlaps_unexplained),
        (1, 0),
        "{r:?}"
    );
    assert_eq!(r.false_acquires_explained, 1);
    assert!(r.ok(), "{r:?}");
    // Not fenced: the resource accepted a's write after b's (a stale write).
    let leaked = a_b_then_late_a(52, 9, true);
    let r = check(&[a, b], &leaked, &[restart(20, 40)]);
    assert_eq!(r.overlaps_unexplained, 1);
    assert_eq!(r.stale_writes_accepted, 1);
    assert!(!r.ok());
}

#[test]
fn an_overlap_the_holder_knew_about_is_exposed() {
    // a slept through its lease (deadline 30) and came back at 100.
    let a = holder("a", 0, 1, 100, 30, false);
    let b = holder("b", 40, 41, 60, 1000, true);
    let writes = a_b_then_late_a(42, 5, false);
    let r = check(&[a, b], &writes, &[]);
    assert_eq!(r.overlaps_exposed_by_validity, 1);
    assert_eq!(r.false_acquires, 0, "b came after a's deadline");
    assert_eq!(r.writes_rejected, 1);
    assert_eq!(r.fresh_writes_rejected, 0, "a knew it was stale");
    assert!(r.ok(), "{r:?}");
}

#[test]
fn a_lease_already_dead_on_return_is_not_a_false_acquire() {
    // b's acquire was sent at 0 and returned at 90 (its process was frozen), long after its
    // deadline at 10; a took the key at 40.
    let a = holder("a", 39, 40, 120, 1000, true);
    let b = holder("b", 0, 90, 91, 10, false);
    let r = check(&[a, b], &[], &[]);
    assert_eq!(r.false_acquires, 0, "{r:?}");
    assert_eq!(r.overlaps_exposed_by_validity, 1);
}

#[test]
fn item_missing_right_after_acquire_is_a_false_acquire_unless_evicted() {
    let a = missing_right_after_acquire();
    let r = check(std::slice::from_ref(&a), &[], &[]);
    assert_eq!((r.on_server_samples, r.false_acquires), (1, 1));
    let eviction = fault(FaultKind::Eviction, 0, 5);
    let r = check(&[a], &[], &[eviction]);
    assert_eq!((r.false_acquires, r.false_acquires_explained), (0, 1));
}

#[test]
fn lost_without_signal_is_counted() {
    let mut a = holder("a", 0, 1, 10, 5, false);
    a.guard = true;
    a.lost_without_signal = true;
    let r = check(&[a], &[], &[]);
    assert_eq!((r.lost_without_signal, r.guard_holders), (1, 1));
    assert!(!r.ok());
}

#[test]
fn a_newest_holder_refused_is_a_fresh_rejection() {
    let [a, b] = sequential_valid_pair();
    // b's token went backwards (lower than a's).
    let writes = [write("a", 9, 2, true), write("b", 3, 13, false)];
    let r = check(&[a, b], &writes, &[]);
    assert_eq!(r.fresh_writes_rejected, 1);
    assert_eq!(r.stale_writes_accepted, 0);
}

#[test]
fn holders_round_trip_through_json() {
    let mut a = holder("w0.t1.2", 3, 4, 5, 6, true);
    a.guard = true;
    a.on_server = Some(true);
    a.slept_inside_ms = 7;
    let back = holder_from_json(&holder_to_json(&a)).unwrap();
    assert_eq!(back, a);
    assert!(holder_from_json(&serde_json::json!({"t": "holder"})).is_none());
    for k in FaultKind::ALL {
        assert_eq!(FaultKind::from_name(k.name()), Some(k));
    }
}

#[test]
fn in_quorum_mode_no_fault_explains_two_valid_holders() {
    let [a, b] = overlapping_valid_pair();
    let fenced = a_b_then_late_a(52, 5, false);
    // Restarts of every server, even a restart into quarantine, explain nothing.
    let faults: Vec<Fault> = (0..5)
        .map(|s| Fault {
            kind: if s == 4 {
                FaultKind::RestartInQuarantine
            } else {
                FaultKind::Restart
            },
            target: Some(s),
            ..restart(20, 40)
        })
        .collect();
    let sharded = check(&[a.clone(), b.clone()], &fenced, &faults);
    assert_eq!(sharded.overlaps_explained, 1);
    let r = check_mode(&[a, b], &fenced, &faults, Mode::Quorum);
    assert_eq!(r.mode, Mode::Quorum);
    assert_eq!(
        (
            r.overlaps_both_valid,
            r.overlaps_explained,
            r.overlaps_unexplained
        ),
        (1, 0, 1)
    );
    assert_eq!((r.false_acquires, r.false_acquires_explained), (1, 0));
    assert!(!r.ok());
    assert_eq!(r.to_json()["mode"], "quorum");
}

#[test]
fn in_quorum_mode_a_sample_without_a_majority_is_explained_by_any_server_fault() {
    let a = missing_right_after_acquire();
    let r = check_mode(std::slice::from_ref(&a), &[], &[], Mode::Quorum);
    assert_eq!(r.false_acquires, 1);
    // A pause of another server (one replica not answering in time) explains it.
    let pause = Fault {
        target: Some(3),
        ..fault(FaultKind::ServerPause, 0, 5)
    };
    let r = check_mode(std::slice::from_ref(&a), &[], &[pause], Mode::Quorum);
    assert_eq!((r.false_acquires, r.false_acquires_explained), (0, 1));
    // A client pause does not.
    let frozen = fault(FaultKind::ClientPause, 0, 5);
    let r = check_mode(&[a], &[], &[frozen], Mode::Quorum);
    assert_eq!(r.false_acquires, 1);
}

#[test]
fn modes_round_trip_through_their_names() {
    for m in [Mode::Sharded, Mode::Quorum] {
        assert_eq!(Mode::from_name(m.name()), Some(m));
    }
    assert_eq!(Mode::from_name("paxos"), None);
    assert_eq!(Mode::default(), Mode::Sharded);
}
