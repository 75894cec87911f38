//! A small JSON rendering of a [`Report`] (no serde: the crate has no dependencies).

use crate::check::Report;
use crate::model::Params;

/// `s` as a JSON string literal.
pub fn string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The bound and the switches as a JSON object.
pub fn params(p: &Params) -> String {
    format!(
        concat!(
            "{{\"servers\":{},\"clients\":{},\"acquires_per_client\":{},\"max_restarts\":{},",
            "\"max_ticks\":{},\"ttl\":{},\"max_ttl\":{},\"quarantine\":{},\"quarantine_enabled\":{},",
            "\"write_back\":{},\"drift\":{},\"max_delay\":{},\"counter_scale\":{},",
            "\"wall_clock_skew\":{},\"max_states\":{}}}"
        ),
        p.servers,
        p.clients,
        p.acquires_per_client,
        p.max_restarts,
        p.max_ticks,
        p.ttl,
        p.max_ttl,
        p.quarantine,
        p.quarantine_enabled,
        p.write_back,
        p.drift,
        p.max_delay,
        p.counter_scale,
        p.wall_clock_skew,
        p.max_states
    )
}

/// The report (with the bound and the wall time) as one JSON object.
pub fn report(p: &Params, r: &Report, wall_ms: u128) -> String {
    let violation = match &r.violation {
        None => "null".to_string(),
        Some(t) => {
            let steps: Vec<String> = t
                .steps
                .iter()
                .map(|s| {
                    format!(
                        "{{\"action\":{},\"state\":{}}}",
                        string(&s.action),
                        string(&s.state)
                    )
                })
                .collect();
            format!(
                "{{\"invariant\":{},\"initial\":{},\"steps\":[{}]}}",
                string(&t.violation.to_string()),
                string(&t.initial),
                steps.join(",")
            )
        }
    };
    format!(
        concat!(
            "{{\"params\":{},\"states_explored\":{},\"transitions\":{},\"max_depth\":{},",
            "\"complete\":{},\"wall_ms\":{},\"violation\":{}}}"
        ),
        params(p),
        r.states_explored,
        r.transitions,
        r.max_depth,
        r.complete,
        wall_ms,
        violation
    )
}
