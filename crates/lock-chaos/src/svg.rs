//! An SVG timeline of a chaos run, built from what the checker already has: per key a lane
//! with each holding as a bar from enter to exit (one colour per worker, hatched after the
//! holder's lease deadline), the faults as labelled bars along the top and faint bands down
//! the lanes, and every overlap where both holders believed their lease valid in red.
//!
//! Plain string-built SVG: no dependencies. Elements carry a `class` (`hold`, `late`,
//! `fault`, `overlap`) so a test (or a reader of the source) can count them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::checker::{Fault, FaultKind, Holder, both_valid_overlaps};

const WIDTH: f64 = 1600.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 20.0;
const ROW: f64 = 9.0;
const FAULT_ROW: f64 = 14.0;
const LANE_GAP: f64 = 14.0;

/// Worker colours (holder ids start `w<worker>.`), cycled.
const WORKER_COLOURS: [&str; 8] = [
    "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2", "#7f7f7f",
];

fn fault_colour(kind: FaultKind) -> &'static str {
    match kind {
        FaultKind::Restart => "#d62728",
        FaultKind::RestartInQuarantine => "#8b0000",
        FaultKind::ServerPause => "#ff7f0e",
        FaultKind::ClientPause => "#9467bd",
        FaultKind::HolderSleep => "#bcbd22",
        FaultKind::ConnectionReset => "#17becf",
        FaultKind::Delay => "#7f7f7f",
        FaultKind::Eviction => "#e377c2",
    }
}

fn worker_of(id: &str) -> usize {
    id.strip_prefix('w')
        .and_then(|r| r.split('.').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A tick step (seconds) giving at most about 15 ticks over `span` seconds.
fn tick_step(span: f64) -> f64 {
    [1.0, 2.0, 5.0, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0]
        .into_iter()
        .find(|s| span / s <= 15.0)
        .unwrap_or(1200.0)
}

/// Assigns each holding of a lane to a row so that bars in one row do not overlap
/// (greedy interval partitioning by enter time). Returns (row of each holding, rows).
fn rows(holders: &[&Holder]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..holders.len()).collect();
    order.sort_by_key(|i| holders[*i].enter_ns);
    let mut ends: Vec<u64> = Vec::new();
    let mut row_of = vec![0; holders.len()];
    for i in order {
        let h = holders[i];
        let end = h.exit_ns.max(h.enter_ns);
        match ends.iter().position(|e| *e <= h.enter_ns) {
            Some(r) => {
                ends[r] = end;
                row_of[i] = r;
            }
            None => {
                ends.push(end);
                row_of[i] = ends.len() - 1;
            }
        }
    }
    (row_of, ends.len().max(1))
}

/// The timeline of a run as an SVG document. `title` heads it (mode, seed, key figures).
///
/// ```
/// use lock_chaos::checker::Holder;
/// let h = Holder { id: "w0.t0.1".into(), key: "k".into(), enter_ns: 1_000_000_000,
///     exit_ns: 2_000_000_000, deadline_ns: 3_000_000_000, valid_at_exit: true,
///     ..Holder::default() };
/// let svg = lock_chaos::svg::timeline(&[h], &[], "run");
/// assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
/// ```
pub fn timeline(holders: &[Holder], faults: &[Fault], title: &str) -> String {
    let starts = holders
        .iter()
        .map(|h| h.enter_ns)
        .chain(faults.iter().map(|f| f.start_ns));
    let ends = holders
        .iter()
        .map(|h| h.exit_ns.max(h.enter_ns))
        .chain(faults.iter().map(|f| f.end_ns.max(f.start_ns)));
    let t0 = starts.min().unwrap_or(0);
    let t1 = ends.max().unwrap_or(t0).max(t0 + 1_000_000_000);
    let span_s = (t1 - t0) as f64 / 1e9;
    let plot_w = WIDTH - LEFT - RIGHT;
    let x = |ns: u64| LEFT + (ns.saturating_sub(t0) as f64 / 1e9) / span_s * plot_w;

    // Lanes: one per key, in key order.
    let mut lanes: BTreeMap<&str, Vec<(usize, &Holder)>> = BTreeMap::new();
    for (i, h) in holders.iter().enumerate() {
        lanes.entry(h.key.as_str()).or_default().push((i, h));
    }
    // Fault rows: one per kind that occurred, in the fixed kind order.
    let kinds: Vec<FaultKind> = FaultKind::ALL
        .into_iter()
        .filter(|k| faults.iter().any(|f| f.kind == *k))
        .collect();

    let top = 40.0;
    let faults_top = top + 18.0;
    let lanes_top = faults_top + kinds.len() as f64 * FAULT_ROW + 16.0;
    let mut lane_layout = Vec::new(); // (key, y, height, row of each holding)
    let mut y = lanes_top;
    for (key, list) in &lanes {
        let hs: Vec<&Holder> = list.iter().map(|(_, h)| *h).collect();
        let (row_of, n) = rows(&hs);
        let height = n as f64 * ROW + 4.0;
        lane_layout.push((*key, y, height, row_of));
        y += height + LANE_GAP;
    }
    let axis_y = y;
    let legend_y = axis_y + 34.0;
    let height = legend_y + 50.0;
    let bottom = axis_y - LANE_GAP / 2.0;

    let mut out = String::new();
    let _ = writeln!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0}" viewBox="0 0 {WIDTH} {height:.0}" font-family="sans-serif" font-size="11">"#
    );
    out.push_str(
        r##"<defs><pattern id="late" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)"><rect width="6" height="6" fill="#ffffff"/><line x1="0" y1="0" x2="0" y2="6" stroke="#555555" stroke-width="3"/></pattern></defs>
<rect width="100%" height="100%" fill="#ffffff"/>
"##,
    );
    let _ = writeln!(
        out,
        r#"<text x="10" y="20" font-size="14" font-weight="bold">{}</text>"#,
        escape(title)
    );

    // Axis grid and labels (seconds since the first event).
    let step = tick_step(span_s);
    let mut tick = 0.0;
    while tick <= span_s + 1e-9 {
        let tx = LEFT + tick / span_s * plot_w;
        let _ = writeln!(
            out,
            r##"<line x1="{tx:.1}" y1="{faults_top:.1}" x2="{tx:.1}" y2="{axis_y:.1}" stroke="#e0e0e0"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle">{tick:.0}</text>"##,
            axis_y + 14.0
        );
        tick += step;
    }
    let _ = writeln!(
        out,
        r##"<line x1="{LEFT}" y1="{axis_y:.1}" x2="{:.1}" y2="{axis_y:.1}" stroke="#000000"/><text x="{:.1}" y="{:.1}" text-anchor="middle">seconds since the first event</text>"##,
        WIDTH - RIGHT,
        LEFT + plot_w / 2.0,
        axis_y + 28.0
    );

    // Faults: a labelled bar in the kind's row, and a faint band down the lanes.
    for (r, kind) in kinds.iter().enumerate() {
        let ry = faults_top + r as f64 * FAULT_ROW;
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            ry + 10.0,
            kind.name()
        );
    }
    for f in faults {
        let Some(r) = kinds.iter().position(|k| *k == f.kind) else {
            continue;
        };
        let ry = faults_top + r as f64 * FAULT_ROW;
        let (fx, fw) = (x(f.start_ns), (x(f.end_ns) - x(f.start_ns)).max(2.0));
        let colour = fault_colour(f.kind);
        let target = match (f.kind, f.target) {
            (_, None) => String::new(),
            (FaultKind::ClientPause | FaultKind::HolderSleep, Some(t)) => format!(" w{t}"),
            (_, Some(t)) => format!(" s{t}"),
        };
        let _ = writeln!(
            out,
            r#"<rect class="fault" x="{fx:.1}" y="{ry:.1}" width="{fw:.1}" height="{:.1}" fill="{colour}"><title>{}{target} {:.2}..{:.2} s</title></rect>"#,
            FAULT_ROW - 3.0,
            f.kind.name(),
            (f.start_ns.saturating_sub(t0)) as f64 / 1e9,
            (f.end_ns.saturating_sub(t0)) as f64 / 1e9,
        );
        if !target.is_empty() && fw > 14.0 {
            let _ = writeln!(
                out,
                r##"<text x="{:.1}" y="{:.1}" font-size="9" fill="#ffffff">{}</text>"##,
                fx + 2.0,
                ry + 9.0,
                target.trim()
            );
        }
        if f.kind.on_server() {
            let _ = writeln!(
                out,
                r#"<rect x="{fx:.1}" y="{lanes_top:.1}" width="{fw:.1}" height="{:.1}" fill="{colour}" fill-opacity="0.10"/>"#,
                (bottom - lanes_top).max(0.0)
            );
        }
    }

    // Lanes: the holdings.
    for ((key, ly, lh, row_of), (_, list)) in lane_layout.iter().zip(&lanes) {
        let _ = writeln!(
            out,
            r##"<rect x="{LEFT}" y="{ly:.1}" width="{plot_w:.1}" height="{lh:.1}" fill="none" stroke="#cccccc"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 6.0,
            ly + lh / 2.0 + 4.0,
            escape(key)
        );
        for ((_, h), row) in list.iter().zip(row_of) {
            let by = ly + 2.0 + *row as f64 * ROW;
            let colour = WORKER_COLOURS[worker_of(&h.id) % WORKER_COLOURS.len()];
            let enter = h.enter_ns;
            let exit = h.exit_ns.max(enter);
            // Valid part: enter .. min(exit, deadline); late part: deadline .. exit.
            let valid_end = if h.deadline_ns > enter {
                exit.min(h.deadline_ns)
            } else {
                enter
            };
            let bx = x(enter);
            let bw = (x(valid_end) - bx).max(if valid_end > enter { 1.0 } else { 0.0 });
            let _ = writeln!(
                out,
                r#"<rect class="hold" x="{bx:.1}" y="{by:.1}" width="{bw:.1}" height="{:.1}" fill="{colour}"><title>{} token {} {:.3}..{:.3} s, deadline {:.3} s, valid at exit: {}</title></rect>"#,
                ROW - 2.0,
                escape(&h.id),
                h.fencing_token
                    .map_or_else(|| "none".to_string(), |t| t.to_string()),
                enter.saturating_sub(t0) as f64 / 1e9,
                exit.saturating_sub(t0) as f64 / 1e9,
                h.deadline_ns.saturating_sub(t0) as f64 / 1e9,
                h.valid_at_exit
            );
            if exit > valid_end {
                let lx = x(valid_end);
                let _ = writeln!(
                    out,
                    r#"<rect class="late" x="{lx:.1}" y="{by:.1}" width="{:.1}" height="{:.1}" fill="url(#late)" stroke="{colour}" stroke-width="0.8"/>"#,
                    (x(exit) - lx).max(1.0),
                    ROW - 2.0
                );
            }
        }
    }

    // Overlaps where both holders believed their lease valid: a red box over the shared
    // interval, across the key's lane.
    let lane_of: BTreeMap<&str, (f64, f64)> = lane_layout
        .iter()
        .map(|(k, ly, lh, _)| (*k, (*ly, *lh)))
        .collect();
    for (a, b) in both_valid_overlaps(holders) {
        let (ha, hb) = (&holders[a], &holders[b]);
        let Some((ly, lh)) = lane_of.get(ha.key.as_str()) else {
            continue;
        };
        let from = hb.enter_ns;
        let to = ha.exit_ns.min(hb.exit_ns).max(from);
        let ox = x(from) - 1.0;
        let ow = (x(to) - x(from)).max(2.0) + 2.0;
        let _ = writeln!(
            out,
            r##"<rect class="overlap" x="{ox:.1}" y="{:.1}" width="{ow:.1}" height="{:.1}" fill="#ff0000" fill-opacity="0.35" stroke="#ff0000" stroke-width="2"><title>both valid: {} and {}</title></rect>"##,
            ly - 3.0,
            lh + 6.0,
            escape(&ha.id),
            escape(&hb.id)
        );
    }

    // Legend.
    let mut lx = 10.0;
    let workers = holders
        .iter()
        .map(|h| worker_of(&h.id))
        .max()
        .map_or(0, |w| w + 1);
    for w in 0..workers {
        let colour = WORKER_COLOURS[w % WORKER_COLOURS.len()];
        let _ = writeln!(
            out,
            r#"<rect x="{lx:.1}" y="{legend_y:.1}" width="14" height="8" fill="{colour}"/><text x="{:.1}" y="{:.1}">worker {w}</text>"#,
            lx + 18.0,
            legend_y + 8.0
        );
        lx += 80.0;
    }
    let _ = writeln!(
        out,
        r##"<rect x="{lx:.1}" y="{legend_y:.1}" width="14" height="8" fill="url(#late)" stroke="#555555" stroke-width="0.8"/><text x="{:.1}" y="{:.1}">held after the lease deadline</text>"##,
        lx + 18.0,
        legend_y + 8.0
    );
    lx += 190.0;
    let _ = writeln!(
        out,
        r##"<rect x="{lx:.1}" y="{legend_y:.1}" width="14" height="8" fill="#ff0000" fill-opacity="0.35" stroke="#ff0000" stroke-width="2"/><text x="{:.1}" y="{:.1}">overlap, both holders believed valid</text>"##,
        lx + 18.0,
        legend_y + 8.0
    );
    let ly2 = legend_y + 20.0;
    let mut lx = 10.0;
    for kind in &kinds {
        let _ = writeln!(
            out,
            r#"<rect x="{lx:.1}" y="{ly2:.1}" width="14" height="8" fill="{}"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            fault_colour(*kind),
            lx + 18.0,
            ly2 + 8.0,
            kind.name()
        );
        lx += 40.0 + kind.name().len() as f64 * 6.5;
    }
    let _ = writeln!(
        out,
        r##"<text x="{lx:.1}" y="{:.1}" fill="#555555">(s = server, w = worker; hover for details)</text>"##,
        ly2 + 8.0
    );
    out.push_str("</svg>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn holder(id: &str, key: &str, enter: u64, exit: u64, deadline: u64, valid: bool) -> Holder {
        Holder {
            id: id.into(),
            key: key.into(),
            enter_ns: enter * S / 10,
            exit_ns: exit * S / 10,
            deadline_ns: deadline * S / 10,
            valid_at_exit: valid,
            fencing_token: Some(enter),
            ..Holder::default()
        }
    }

    #[test]
    fn tiny_history_is_well_formed() {
        let holders = [
            holder("w0.t0.1", "k1", 10, 20, 30, true),
            // Overlaps w0.t0.1, both valid: one red marker.
            holder("w1.t0.1", "k1", 15, 25, 35, true),
            // Overlaps both, but knew its lease was gone: no marker; late part hatched.
            holder("w2.t3.1", "k1", 18, 40, 22, false),
            holder("w0.t1.1", "k2<&>", 5, 50, 60, true),
        ];
        let faults = [
            Fault {
                kind: FaultKind::Restart,
                target: Some(1),
                start_ns: 12 * S / 10,
                end_ns: 14 * S / 10,
            },
            Fault {
                kind: FaultKind::ClientPause,
                target: Some(2),
                start_ns: 30 * S / 10,
                end_ns: 35 * S / 10,
            },
        ];
        let svg = timeline(&holders, &faults, "quorum <seed 1>");
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
        assert_eq!(svg.matches("<svg").count(), 1);
        assert_eq!(svg.matches(r#"class="hold""#).count(), holders.len());
        assert_eq!(svg.matches(r#"class="late""#).count(), 1);
        assert_eq!(svg.matches(r#"class="overlap""#).count(), 1);
        assert_eq!(svg.matches(r#"class="fault""#).count(), faults.len());
        assert!(svg.contains("k2&lt;&amp;&gt;") && !svg.contains("k2<&>"));
        assert!(svg.contains("quorum &lt;seed 1&gt;"));
        assert!(svg.contains(">restart<") && svg.contains(">client_pause<"));
        assert!(svg.contains("worker 2"));
        // Every element opened is closed (a rough well-formedness check).
        let opens = svg.matches("<rect").count() + svg.matches("<text").count();
        let closes = svg.matches("</rect>").count()
            + svg.matches("/>").count()
            + svg.matches("</text>").count();
        assert!(closes >= opens, "{opens} opened, {closes} closed");
    }

    #[test]
    fn empty_history_still_draws() {
        let svg = timeline(&[], &[], "empty");
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches(r#"class="hold""#).count(), 0);
    }

    #[test]
    fn rows_keep_overlapping_bars_apart() {
        let hs = [
            holder("w0.t0.1", "k", 0, 10, 20, true),
            holder("w0.t0.2", "k", 5, 15, 20, true),
            holder("w0.t0.3", "k", 12, 20, 30, true),
        ];
        let refs: Vec<&Holder> = hs.iter().collect();
        let (row_of, n) = rows(&refs);
        assert_eq!((row_of, n), (vec![0, 1, 0], 2));
    }
}
