//! The command line, as clap reads it: every flag with its long form, its default (shown by
//! `--help`) and, for the connection and the log level, its environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// The shortest `--ttl`: memcached trusts a lock for its ttl rounded up to whole seconds minus
/// one second, so a shorter ttl leaves nothing to renew within.
pub(crate) const MIN_TTL: Duration = Duration::from_secs(2);

/// pip-lock: distributed locks on memcached for scripts, cron jobs and CI steps.
///
/// Exit codes: 0 success (or the command's own code); 1 busy (--conflict-exit-code);
/// 2 usage error; 69 a server cannot be reached; 70 any other lock or server error;
/// 75 the lock was lost while the command ran; 78 bad configuration; 126/127 the command
/// cannot be run / is not found; 128+N the command (or pip-lock, while waiting) was ended
/// by signal N.
#[derive(Debug, Parser)]
#[command(name = "pip-lock", version, max_term_width = 100)]
pub(crate) struct Cli {
    /// Where the lock lives.
    #[command(flatten, next_help_heading = "Connection")]
    pub(crate) connection: Connection,

    /// Log filter for pip-lock's own log lines on stderr: a level (off, error, warn, info,
    /// debug, trace) or comma-separated parts, each a level or TARGET=LEVEL (such as
    /// `lock_cli=debug`). Without it, RUST_LOG is read; failing both, `warn`.
    #[arg(
        long,
        global = true,
        env = "PIP_LOCK_LOG_LEVEL",
        value_name = "FILTER",
        help_heading = "Logging"
    )]
    pub(crate) log_level: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The lock to use: a container configuration, or memcached servers given directly. One of
/// the three; a flag on the command line overrides the environment variables.
#[derive(Debug, Args)]
pub(crate) struct Connection {
    /// A container configuration (JSON, as in examples/config/*.json); the lock component is
    /// the one whose descriptor matches `*:lock:*:*:1.0`. `${NAME:-default}` placeholders in
    /// its string values are replaced from the environment.
    #[arg(
        short = 'c',
        long,
        global = true,
        env = "PIP_LOCK_CONFIG",
        value_name = "FILE"
    )]
    pub(crate) config: Option<PathBuf>,

    /// memcached servers, `host:port,host:port,...` (every client of a lock must list the same
    /// servers in the same order).
    #[arg(
        short = 's',
        long,
        global = true,
        env = "PIP_LOCK_SERVERS",
        value_name = "HOST:PORT,..."
    )]
    pub(crate) servers: Option<String>,

    /// A memcached connection uri, e.g. `memcached://cache1:11211,cache2:11211`.
    #[arg(long, global = true, env = "PIP_LOCK_URI", value_name = "URI")]
    pub(crate) uri: Option<String>,

    /// A lock option for --servers / --uri, `options.NAME=VALUE` (e.g. `options.mode=quorum`,
    /// `options.key_prefix=jobs:`, `options.timeout=2000`); may be repeated. With --config,
    /// options belong in the file.
    #[arg(short = 'o', long = "option", global = true, value_name = "KEY=VALUE")]
    pub(crate) options: Vec<String>,

    /// The user name for memcached's authentication (`-Y`), with --servers / --uri. The
    /// password is read from the PIP_LOCK_PASSWORD environment variable only (a password on
    /// the command line is visible to every user of the machine).
    #[arg(long, global = true, env = "PIP_LOCK_USERNAME", value_name = "USER")]
    pub(crate) username: Option<String>,

    /// TLS to every server (`connection.protocol=tls`), with --servers / --uri; the server's
    /// certificate is verified against --tls-ca, or the system's trust store.
    #[arg(long, global = true, env = "PIP_LOCK_TLS")]
    pub(crate) tls: bool,

    /// PEM file of the CA certificates that sign the servers' certificates (implies --tls).
    #[arg(long, global = true, env = "PIP_LOCK_TLS_CA", value_name = "FILE")]
    pub(crate) tls_ca: Option<PathBuf>,

    /// PEM client certificate and key for mutual TLS (implies --tls; give both).
    #[arg(long, global = true, env = "PIP_LOCK_TLS_CERT", value_name = "FILE")]
    pub(crate) tls_cert: Option<PathBuf>,

    /// The private key of --tls-cert.
    #[arg(long, global = true, env = "PIP_LOCK_TLS_KEY", value_name = "FILE")]
    pub(crate) tls_key: Option<PathBuf>,
}

impl Connection {
    /// Drops the connection settings that came from the environment when another one was
    /// given on the command line (`PIP_LOCK_CONFIG` set, `--servers` given: the servers).
    pub(crate) fn prefer_command_line(&mut self, matches: &clap::ArgMatches) {
        let given = |id: &str| {
            matches!(
                matches.value_source(id),
                Some(clap::parser::ValueSource::CommandLine)
            )
        };
        if !["config", "servers", "uri"].iter().any(|id| given(id)) {
            return;
        }
        if !given("config") {
            self.config = None;
        }
        if !given("servers") {
            self.servers = None;
        }
        if !given("uri") {
            self.uri = None;
        }
    }
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Take the lock, run a command while it is held (renewing it), release it.
    Run(RunArgs),
    /// Show whether a key is held, by whom and for how long.
    Inspect(InspectArgs),
    /// Show every configured server's health; exits 69 when one is down.
    Status(StatusArgs),
    /// Delete a key's lock whoever holds it (an administrator's tool); needs --yes.
    ForceRelease(ForceReleaseArgs),
}

/// `run KEY -- CMD [ARGS...]`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    /// The lock key.
    pub(crate) key: String,

    /// The command and its arguments (after `--`).
    #[arg(required = true, trailing_var_arg = true, value_name = "CMD")]
    pub(crate) command: Vec<String>,

    /// The lease's ttl: how long the lock outlives pip-lock if pip-lock dies without releasing
    /// it. The lease is renewed every third of its validity (memcached trusts the ttl rounded
    /// up to whole seconds minus 1s) while the command runs. At least 2s.
    #[arg(short = 't', long, default_value = "30s", value_parser = parse_ttl, value_name = "DURATION")]
    pub(crate) ttl: Duration,

    /// How long to wait for a busy lock before giving up with the conflict exit code.
    /// Without it (and without --no-wait), pip-lock waits as long as it takes.
    #[arg(short = 'w', long, value_parser = parse_duration, value_name = "DURATION", conflicts_with = "no_wait")]
    pub(crate) wait: Option<Duration>,

    /// Do not wait: a busy lock exits at once with the conflict exit code.
    #[arg(short = 'n', long)]
    pub(crate) no_wait: bool,

    /// The exit code when the lock is busy (--no-wait) or still busy at the end of --wait.
    #[arg(short = 'E', long, default_value_t = crate::exit::CONFLICT, value_name = "CODE")]
    pub(crate) conflict_exit_code: u8,

    /// When the lock is lost, how long the command has between SIGTERM and SIGKILL.
    #[arg(short = 'g', long, default_value = "10s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) kill_grace: Duration,

    /// Run the command through `sh -c` (the words after `--` are joined with spaces).
    #[arg(long)]
    pub(crate) shell: bool,

    /// Serve the lock's metrics (docs/observability.md) in the Prometheus text format on
    /// this address (`ip:port`, any path, e.g. `127.0.0.1:9464/metrics`) while the command
    /// runs. An address that cannot be listened on exits 78 before the lock is taken.
    #[arg(long, env = "PIP_LOCK_METRICS_ADDR", value_name = "ADDR")]
    pub(crate) metrics_addr: Option<std::net::SocketAddr>,
}

/// `inspect KEY`.
#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The lock key.
    pub(crate) key: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `status`.
#[derive(Debug, Args)]
pub(crate) struct StatusArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// `force-release KEY --yes`.
#[derive(Debug, Args)]
pub(crate) struct ForceReleaseArgs {
    /// The lock key.
    pub(crate) key: String,
    /// Confirm: delete the lock even though another process holds it.
    #[arg(long)]
    pub(crate) yes: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub(crate) json: bool,
}

/// A duration as people write it: `500ms`, `10s`, `2m`, `1h 30m`.
fn parse_duration(text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim())
        .map_err(|e| format!("'{text}' is not a duration such as 500ms, 10s or 2m ({e})"))
}

/// A `--ttl`: a duration of at least [`MIN_TTL`].
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let ttl = parse_duration(text)?;
    if ttl < MIN_TTL {
        return Err(format!(
            "a ttl of {text} is too short: memcached trusts a lock for its ttl rounded up to \
             whole seconds minus 1s, so the ttl must be at least 2s"
        ));
    }
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_are_read_as_people_write_them() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_ttl("1s").is_err());
        assert_eq!(parse_ttl("2s"), Ok(Duration::from_secs(2)));
    }

    #[test]
    fn run_takes_the_command_after_the_key() {
        let cli = Cli::try_parse_from([
            "pip-lock",
            "--servers",
            "h:1",
            "run",
            "--no-wait",
            "k",
            "--",
            "echo",
            "-n",
            "hi",
        ])
        .expect("parses");
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.key, "k");
        assert_eq!(run.command, ["echo", "-n", "hi"]);
        assert!(run.no_wait);
        assert_eq!(run.ttl, Duration::from_secs(30));
        assert_eq!(run.conflict_exit_code, 1);
    }
}
