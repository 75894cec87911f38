//! `soak [SECONDS] [--interval-ms=N] [--tasks=N]`: mixed lock operations over churning
//! unique keys against one memcached; a JSON sample line every interval, then a summary.

use lock_chaos::soak::{SoakOptions, run_soak};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let options = match SoakOptions::parse(&args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("soak: runtime: {e}");
            std::process::exit(2);
        }
    };
    match runtime.block_on(run_soak(options, |line| println!("{line}"))) {
        Ok(summary) => println!("{summary}"),
        Err(e) => {
            eprintln!("soak: {e}");
            std::process::exit(2);
        }
    }
}
