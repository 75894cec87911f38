//! `chaos [SECONDS] [--workers=N --tasks=N --servers=N --keys=N --seed=N --ttl-ms=N
//! --timeout-ms=N]`: the chaos run (see the crate docs). Exit status 0 when every
//! must-be-zero figure is zero, 1 when not, 2 on a setup error. `chaos --worker ...` is the
//! worker process it starts.

use lock_chaos::orchestrator::{ChaosOptions, run_chaos};
use lock_chaos::worker::{WorkerArgs, run_worker};
use lock_chaos::{exit_setup_error, runtime_or_exit};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = runtime_or_exit("chaos");
    if args.first().map(String::as_str) == Some("--worker") {
        let code = match WorkerArgs::parse(&args[1..]) {
            Ok(w) => runtime.block_on(run_worker(w)),
            Err(e) => {
                eprintln!("chaos worker: {e}");
                2
            }
        };
        std::process::exit(code);
    }
    let exe = std::env::current_exe()
        .unwrap_or_else(|e| exit_setup_error(&format!("chaos: cannot find own executable: {e}")));
    let options = ChaosOptions::parse(&args, exe)
        .unwrap_or_else(|e| exit_setup_error(&format!("chaos: {e}")));
    match runtime.block_on(run_chaos(options)) {
        Ok(summary) => {
            println!("{summary}");
            let ok = summary.get("ok").and_then(serde_json::Value::as_bool) == Some(true);
            drop(runtime);
            std::process::exit(if ok { 0 } else { 1 });
        }
        Err(e) => exit_setup_error(&format!("chaos: {e}")),
    }
}
