//! `soak [SECONDS] [--interval-ms=N] [--tasks=N]`: mixed lock operations over churning
//! unique keys against one memcached; a JSON sample line every interval, then a summary.

use lock_chaos::soak::{SoakOptions, run_soak};
use lock_chaos::{exit_setup_error, runtime_or_exit};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options =
        SoakOptions::parse(&args).unwrap_or_else(|e| exit_setup_error(&format!("soak: {e}")));
    let runtime = runtime_or_exit("soak");
    match runtime.block_on(run_soak(options, |line| println!("{line}"))) {
        Ok(summary) => println!("{summary}"),
        Err(e) => exit_setup_error(&format!("soak: {e}")),
    }
}
