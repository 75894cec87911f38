//! Exhaustive breadth-first exploration of every interleaving of the modelled steps, with a
//! visited set of canonical states. Breadth-first order makes a reported counterexample one
//! of the shortest (fewest steps).

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use crate::model::{Params, State, Step, Violation};

/// The outcome of one run.
#[derive(Debug, Clone)]
pub struct Report {
    /// Distinct (canonical) states reached, the initial ones included.
    pub states_explored: usize,
    /// Transitions examined (successor states generated, duplicates included).
    pub transitions: u64,
    /// The largest number of steps from an initial state to a reached state.
    pub max_depth: usize,
    /// `false` when the run stopped early (a violation, or `max_states` reached).
    pub complete: bool,
    /// The first violation found, with the steps that lead to it.
    pub violation: Option<Trace>,
}

/// A counterexample: the broken invariant and the steps from an initial state.
#[derive(Debug, Clone)]
pub struct Trace {
    /// What is broken in the last state.
    pub violation: Violation,
    /// The initial state, rendered.
    pub initial: String,
    /// Each step, readable, with the state it leads to.
    pub steps: Vec<TraceStep>,
}

/// One step of a counterexample.
#[derive(Debug, Clone)]
pub struct TraceStep {
    /// What happens.
    pub action: String,
    /// The state afterwards, rendered on one line.
    pub state: String,
}

impl fmt::Display for Trace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "VIOLATION: {}", self.violation)?;
        writeln!(f, "  0. initial: {}", self.initial)?;
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "{:3}. {}", i + 1, step.action)?;
            writeln!(f, "       => {}", step.state)?;
        }
        Ok(())
    }
}

/// Explores every reachable state within the bound of `params` and checks both invariants in
/// each. Stops at the first violation (returned as a shortest trace) or at `max_states`.
pub fn check(params: &Params) -> Report {
    // Per reached state: its parent's index and the step from it (the roots have none).
    let mut origin: Vec<Option<(u32, Step)>> = Vec::new();
    let mut index: HashMap<State, u32, BuildHasherDefault<FxHasher>> = HashMap::default();
    let mut queue: VecDeque<(State, u32, usize)> = VecDeque::new();
    let mut report = Report {
        states_explored: 0,
        transitions: 0,
        max_depth: 0,
        complete: true,
        violation: None,
    };

    for mut state in State::initial(params) {
        state.normalize(params);
        let state = state.canonical(params);
        if index.contains_key(&state) {
            continue;
        }
        let id = origin.len() as u32;
        origin.push(None);
        index.insert(state.clone(), id);
        queue.push_back((state, id, 0));
    }

    while let Some((state, id, depth)) = queue.pop_front() {
        report.max_depth = report.max_depth.max(depth);
        if let Some(violation) = state.violation(params) {
            report.complete = false;
            report.violation = Some(trace(params, &origin, &index, &state, id, violation));
            break;
        }
        for (step, next) in state.successors(params) {
            report.transitions += 1;
            let next = next.canonical(params);
            if index.contains_key(&next) {
                continue;
            }
            if origin.len() >= params.max_states {
                report.complete = false;
                queue.clear();
                break;
            }
            let next_id = origin.len() as u32;
            origin.push(Some((id, step)));
            index.insert(next.clone(), next_id);
            queue.push_back((next, next_id, depth + 1));
        }
    }
    report.states_explored = origin.len();
    report
}

/// Rebuilds the path to `last` from the parent links. The stored states are symmetry-class
/// representatives, so the path is replayed on real (unrenamed) states: at each step the
/// successor whose class is the next one on the path is taken, which keeps the server and
/// client names stable throughout the trace.
fn trace(
    params: &Params,
    origin: &[Option<(u32, Step)>],
    index: &HashMap<State, u32, BuildHasherDefault<FxHasher>>,
    last: &State,
    last_id: u32,
    violation: Violation,
) -> Trace {
    let mut path = vec![last_id];
    let mut id = last_id;
    while let Some((parent, _)) = origin[id as usize] {
        path.push(parent);
        id = parent;
    }
    path.reverse();
    // States by id, for the ids on the path only (one scan of the visited set).
    let mut by_id: HashMap<u32, State> = path.iter().map(|&i| (i, last.clone())).collect();
    for (state, i) in index {
        if let Some(slot) = by_id.get_mut(i) {
            *slot = state.clone();
        }
    }
    let mut state = by_id[&path[0]].clone();
    let initial = state.render(params);
    let mut out = Vec::new();
    for next_id in &path[1..] {
        let target = &by_id[next_id];
        let (step, next) = state
            .successors(params)
            .into_iter()
            .find(|(_, next)| next.clone().canonical(params) == *target)
            .expect("every path step is a successor");
        out.push(TraceStep {
            action: step.describe(&state, params),
            state: next.render(params),
        });
        state = next;
    }
    Trace {
        violation,
        initial,
        steps: out,
    }
}

/// The multiply-rotate hash used by rustc (no external dependency): much faster than SipHash
/// for the small integers a state is made of; no untrusted input is hashed.
#[derive(Debug, Default, Clone, Copy)]
struct FxHasher {
    hash: u64,
}

impl FxHasher {
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
    }
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }
    fn finish(&self) -> u64 {
        self.hash
    }
}
