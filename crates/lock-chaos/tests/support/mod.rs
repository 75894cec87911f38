//! Shared by the short chaos runs: run the `chaos` binary, read its summary, and the
//! checks that hold in every mode.

use std::process::{Command, Output};

use serde_json::Value;

/// One finished run of the `chaos` binary and the JSON summary it printed last.
pub(crate) struct ChaosRun {
    pub(crate) output: Output,
    pub(crate) stderr: String,
    pub(crate) summary: Value,
}

impl ChaosRun {
    /// Runs `chaos` with `args` and reads the last JSON line of its stdout as the summary.
    pub(crate) fn new<I, S>(args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let output = Command::new(env!("CARGO_BIN_EXE_chaos"))
            .args(args)
            .output()
            .expect("run the chaos binary");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        let summary: Value = stdout
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str(l).ok())
            .unwrap_or_else(|| panic!("no summary; stderr:\n{stderr}"));
        Self {
            output,
            stderr,
            summary,
        }
    }

    /// The number at `path` in the summary; panics if it is missing.
    pub(crate) fn n(&self, path: &[&str]) -> u64 {
        let summary = &self.summary;
        let mut v = summary;
        for p in path {
            v = &v[*p];
        }
        v.as_u64()
            .unwrap_or_else(|| panic!("{path:?} missing in {summary}"))
    }

    /// The checks of every mode: the must-be-zero figures are zero, the run really ran (work
    /// was done, faults were injected), and it reported and exited as ok.
    pub(crate) fn assert_clean_and_busy(&self) {
        let summary = &self.summary;
        // Must-be-zero figures.
        for figure in [
            "overlaps_unexplained",
            "stale_writes_accepted",
            "false_acquires",
            "hangs",
            "lost_without_signal",
            "unparsed_lines",
        ] {
            assert_eq!(self.n(&[figure]), 0, "{figure}: {summary}");
        }
        // The run really ran: work was done and faults were injected.
        assert!(self.n(&["operations"]) > 100, "{summary}");
        assert!(self.n(&["acquisitions"]) > 10, "{summary}");
        assert!(self.n(&["faults_total"]) >= 3, "{summary}");
        assert!(self.n(&["check", "writes", "accepted"]) > 10, "{summary}");
        assert_eq!(summary["ok"], Value::Bool(true), "{summary}");
        assert!(
            self.output.status.success(),
            "exit {:?}; stderr:\n{}",
            self.output.status,
            self.stderr
        );
    }
}

/// Asserts that `chaos` refuses `args` as a usage error (exit status 2).
pub(crate) fn assert_usage_error(args: &[&str]) {
    let output = Command::new(env!("CARGO_BIN_EXE_chaos"))
        .args(args)
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2), "{args:?}");
}
