//! Runs the quorum-mode model checker at a bound given on the command line and prints the
//! report as one JSON object (exit status 1 when an invariant is violated, 2 on bad usage).

use std::process::ExitCode;
use std::time::Instant;

use lock_model::{Params, check, json};

const USAGE: &str = "usage: model_check [--servers N] [--clients N] [--acquires N] [--restarts N] \
[--max-ticks N] [--ttl N] [--max-ttl N] [--quarantine N] [--drift N] [--max-delay N] \
[--skew N] [--counter-scale N] [--max-states N] [--no-quarantine] [--no-write-back] [--trace]";

fn parse(args: &[String]) -> Result<(Params, bool), String> {
    let mut p = Params::default();
    let mut print_trace = false;
    let mut ttl_given = false;
    let mut quarantine_given = false;
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--no-quarantine" => p.quarantine_enabled = false,
            "--no-write-back" => p.write_back = false,
            "--trace" => print_trace = true,
            "--help" | "-h" => return Err(USAGE.into()),
            _ => {
                let value = it
                    .next()
                    .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
                let number: u64 = value
                    .parse()
                    .map_err(|_| format!("{flag}: not a number: {value}"))?;
                let small = || u32::try_from(number).map_err(|_| format!("{flag}: too large"));
                match flag.as_str() {
                    "--servers" => p.servers = number as usize,
                    "--clients" => p.clients = number as usize,
                    "--acquires" => p.acquires_per_client = small()?,
                    "--restarts" => p.max_restarts = small()?,
                    "--max-ticks" => p.max_ticks = small()?,
                    "--ttl" => {
                        p.ttl = small()?;
                        ttl_given = true;
                    }
                    "--max-ttl" => p.max_ttl = small()?,
                    "--quarantine" => {
                        p.quarantine = small()?;
                        quarantine_given = true;
                    }
                    "--drift" => p.drift = small()?,
                    "--max-delay" => p.max_delay = small()?,
                    "--skew" => p.wall_clock_skew = small()?,
                    "--counter-scale" => p.counter_scale = number,
                    "--max-states" => p.max_states = number as usize,
                    _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
                }
            }
        }
    }
    // Defaults follow --max-ttl: ttl = max_ttl, quarantine = max_ttl.
    if !ttl_given {
        p.ttl = p.max_ttl;
    }
    if !quarantine_given {
        p.quarantine = p.max_ttl;
    }
    p.validate()?;
    Ok((p, print_trace))
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (params, print_trace) = match parse(&args) {
        Ok(parsed) => parsed,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    let started = Instant::now();
    let report = check(&params);
    let wall_ms = started.elapsed().as_millis();
    println!("{}", json::report(&params, &report, wall_ms));
    if let Some(trace) = &report.violation {
        if print_trace {
            eprint!("{trace}");
        }
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}
