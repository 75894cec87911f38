//! The command `run` protects: a child in a process group of its own, so that one signal
//! reaches it and everything it started (a shell's children, their children), and so that a
//! terminal's Ctrl-C reaches pip-lock first, which forwards it.

use std::io;
use std::process::ExitStatus;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::time::{Instant, sleep};

use crate::exit;

/// The child's environment variable holding the lock key.
pub(crate) const ENV_KEY: &str = "PIP_LOCK_KEY";
/// The child's environment variable holding the lease's fencing token (unset when the
/// backend could not vouch for one).
pub(crate) const ENV_FENCING_TOKEN: &str = "PIP_LOCK_FENCING_TOKEN";
/// The child's environment variable holding the lease's ttl in milliseconds.
pub(crate) const ENV_TTL_MS: &str = "PIP_LOCK_TTL_MS";

/// How often the group is checked for members while it is being stopped.
const POLL: Duration = Duration::from_millis(20);

/// What the lock holder tells its command.
#[derive(Debug)]
pub(crate) struct LeaseEnv<'a> {
    pub(crate) key: &'a str,
    pub(crate) fencing_token: Option<u64>,
    pub(crate) ttl: Duration,
}

/// A running command, leader of its own process group.
#[derive(Debug)]
pub(crate) struct Group {
    child: Child,
    pgid: Pid,
    status: Option<ExitStatus>,
}

impl Group {
    /// Starts `words` (through `sh -c` when `shell`) in a new process group, with the lease's
    /// environment variables. A command that cannot be started is an error whose exit code
    /// follows the shell's: 127 not found, 126 not executable.
    pub(crate) fn spawn(
        words: &[String],
        shell: bool,
        lease: &LeaseEnv<'_>,
    ) -> Result<Group, (u8, String)> {
        let mut command = if shell {
            let mut c = Command::new("sh");
            c.arg("-c").arg(words.join(" "));
            c
        } else {
            let mut c = Command::new(&words[0]);
            c.args(&words[1..]);
            c
        };
        command
            .process_group(0)
            .env(ENV_KEY, lease.key)
            .env(ENV_TTL_MS, lease.ttl.as_millis().to_string())
            .env_remove(ENV_FENCING_TOKEN);
        if let Some(token) = lease.fencing_token {
            command.env(ENV_FENCING_TOKEN, token.to_string());
        }
        let program = if shell { "sh" } else { words[0].as_str() };
        let child = command.spawn().map_err(|e| {
            let code = match e.kind() {
                io::ErrorKind::NotFound => exit::NOT_FOUND,
                _ => exit::CANNOT_EXECUTE,
            };
            (code, format!("cannot run '{program}': {e}"))
        })?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| {
                (
                    exit::FAILURE,
                    "the started command has no process id".to_string(),
                )
            })?;
        Ok(Group {
            child,
            pgid: Pid::from_raw(pid),
            status: None,
        })
    }

    /// The process group's id (the child's pid).
    pub(crate) fn pgid(&self) -> i32 {
        self.pgid.as_raw()
    }

    /// Waits for the child (the group's leader) to exit; at once when it already has.
    pub(crate) async fn wait(&mut self) -> io::Result<ExitStatus> {
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = self.child.wait().await?;
        self.status = Some(status);
        Ok(status)
    }

    /// Sends `signal` to every process of the group; a group that is already empty is fine.
    pub(crate) fn signal(&self, signal: Signal) {
        match killpg(self.pgid, signal) {
            Ok(()) | Err(Errno::ESRCH) => {}
            Err(e) => {
                tracing::warn!(pgid = self.pgid(), %signal, error = %e, "signalling the command's process group failed")
            }
        }
    }

    /// Whether any process of the group is still there (the leader counts until reaped).
    fn has_members(&self) -> bool {
        !matches!(killpg(self.pgid, None), Err(Errno::ESRCH))
    }

    /// Stops the whole group: SIGTERM, then SIGKILL to whatever is left after `grace`. Returns
    /// once the leader is reaped and the group is empty (or, should a process survive
    /// SIGKILL, shortly after). Returns whether SIGKILL was needed.
    pub(crate) async fn stop(&mut self, grace: Duration) -> bool {
        self.signal(Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        if self.drain_until(deadline).await {
            return false;
        }
        tracing::warn!(
            pgid = self.pgid(),
            "the command outlived its grace period: SIGKILL"
        );
        self.signal(Signal::SIGKILL);
        self.drain_until(Instant::now() + Duration::from_secs(2))
            .await;
        true
    }

    /// Reaps the leader and waits for the group to empty, until `deadline`; whether it did.
    async fn drain_until(&mut self, deadline: Instant) -> bool {
        loop {
            if self.status.is_none() {
                if let Ok(Some(status)) = self.child.try_wait() {
                    self.status = Some(status);
                }
            }
            if self.status.is_some() && !self.has_members() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            sleep(POLL).await;
        }
    }
}

/// The exit code that reports `status` the way a shell does: the code, or 128 + the signal.
pub(crate) fn exit_code(status: ExitStatus) -> u8 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code & 0xff).unwrap_or(exit::FAILURE),
        (None, Some(signal)) => exit::for_signal(signal),
        (None, None) => exit::FAILURE,
    }
}
