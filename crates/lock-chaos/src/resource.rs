//! The fenced resource: a tiny loopback TCP service that, per key, accepts a write only
//! with a fencing token at least as high as the highest it has accepted, and logs every
//! decision.
//!
//! Protocol, one line per request: `W <key> <token> <holder-id>\n`, answered `OK\n` or
//! `STALE <highest>\n`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::checker::Write;
use crate::wall_ns;

#[derive(Debug, Default)]
struct State {
    highest: HashMap<String, u64>,
    log: Vec<Write>,
}

/// The running service (stops when dropped).
///
/// ```
/// use lock_chaos::resource::{FencedResource, ResourceClient};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> std::io::Result<()> {
/// let resource = FencedResource::start().await?;
/// let mut client = ResourceClient::connect(resource.address()).await?;
/// assert!(client.write("k", 7, "h1").await?);
/// assert!(!client.write("k", 6, "h2").await?); // stale token refused
/// assert!(client.write("k", 7, "h1").await?);
/// assert_eq!(resource.log().len(), 3);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct FencedResource {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    accept: JoinHandle<()>,
}

impl FencedResource {
    /// Binds `127.0.0.1:0` and serves until dropped.
    pub async fn start() -> std::io::Result<FencedResource> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, shared.clone()));
            }
        });
        Ok(FencedResource {
            addr,
            state,
            accept,
        })
    }

    /// `127.0.0.1:<port>`.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// Every decision so far, in the order they were made.
    pub fn log(&self) -> Vec<Write> {
        self.state.lock().map(|s| s.log.clone()).unwrap_or_default()
    }
}

impl Drop for FencedResource {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        let mut parts = line.split_whitespace();
        let reply = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("W"), Some(key), Some(token), Some(holder)) => match token.parse::<u64>() {
                Ok(token) => decide(&state, key, token, holder),
                Err(_) => "ERROR bad token\n".to_string(),
            },
            _ => "ERROR bad request\n".to_string(),
        };
        if write.write_all(reply.as_bytes()).await.is_err() {
            return;
        }
    }
}

fn decide(state: &Mutex<State>, key: &str, token: u64, holder: &str) -> String {
    let Ok(mut s) = state.lock() else {
        return "ERROR poisoned\n".to_string();
    };
    let highest = s.highest.get(key).copied().unwrap_or(0);
    let accepted = token >= highest;
    if accepted {
        s.highest.insert(key.to_string(), token);
    }
    s.log.push(Write {
        holder: holder.to_string(),
        key: key.to_string(),
        token,
        at_ns: wall_ns(),
        accepted,
    });
    if accepted {
        "OK\n".to_string()
    } else {
        format!("STALE {highest}\n")
    }
}

/// One connection to the resource.
#[derive(Debug)]
pub struct ResourceClient {
    lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    write: tokio::net::tcp::OwnedWriteHalf,
}

impl ResourceClient {
    /// Connects (loopback).
    pub async fn connect(addr: SocketAddr) -> std::io::Result<ResourceClient> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        Ok(ResourceClient {
            lines: BufReader::new(read).lines(),
            write,
        })
    }

    /// Presents a write with `token`; `Ok(true)` when accepted. Bounded by 5 s.
    pub async fn write(&mut self, key: &str, token: u64, holder: &str) -> std::io::Result<bool> {
        let request = format!("W {key} {token} {holder}\n");
        let exchange = async {
            self.write.write_all(request.as_bytes()).await?;
            match self.lines.next_line().await? {
                Some(line) if line == "OK" => Ok(true),
                Some(line) if line.starts_with("STALE") => Ok(false),
                other => Err(std::io::Error::other(format!(
                    "unexpected resource reply {other:?}"
                ))),
            }
        };
        tokio::time::timeout(Duration::from_secs(5), exchange)
            .await
            .map_err(|_| std::io::Error::other("resource timed out"))?
    }
}
