//! MemoryLock throughput: uncontended try+release pairs (one task; one task per core) and
//! a contended key.

use std::sync::Arc;
use std::time::{Duration, Instant};

use commons::Context;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use lock_core::{Lock, MemoryLock};

const TTL: Duration = Duration::from_secs(30);

/// Distinct keys, built before measuring so formatting is not timed.
fn keys(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn multi_thread_runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .unwrap()
}

/// `iters` uncontended try+release pairs, cycling through `keys`.
async fn try_release_pairs(lock: &MemoryLock, ctx: &Context, keys: &[String], iters: u64) {
    for i in 0..iters as usize {
        let key = &keys[i % keys.len()];
        assert!(lock.try_acquire_lock(ctx, key, TTL).await.unwrap());
        lock.release_lock(ctx, key).await.unwrap();
    }
}

/// Spawns one task per owner (`work(owner index)`) and times them until all are done.
async fn time_tasks<Fut>(owners: usize, work: impl Fn(usize) -> Fut) -> Duration
where
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let tasks: Vec<_> = (0..owners).map(|t| tokio::spawn(work(t))).collect();
    for task in tasks {
        task.await.unwrap();
    }
    start.elapsed()
}

fn uncontended_single_task(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let lock = MemoryLock::new();
    let ctx = Context::new();
    let keys = keys("single", 4096);
    let mut group = c.benchmark_group("memory_lock");
    group.throughput(Throughput::Elements(1));
    group.bench_function("uncontended_try_release_pair/1_task", |b| {
        // One task runs the whole batch, so the runtime is entered once per batch.
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                try_release_pairs(&lock, &ctx, &keys, iters).await;
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn uncontended_task_per_core(c: &mut Criterion) {
    let cores = cores();
    let rt = multi_thread_runtime(cores);
    let lock = Arc::new(MemoryLock::new());
    let per_task: Arc<Vec<Vec<String>>> = Arc::new(
        (0..cores)
            .map(|t| keys(&format!("core{t}"), 4096))
            .collect(),
    );
    let mut group = c.benchmark_group("memory_lock");
    group.throughput(Throughput::Elements(cores as u64));
    group.bench_function(format!("uncontended_try_release_pair/{cores}_tasks"), |b| {
        // Each iteration: every task does one pair; batched to amortise spawning.
        b.iter_custom(|iters| {
            rt.block_on(time_tasks(cores, |t| {
                let (lock, keys) = (lock.clone(), per_task.clone());
                async move { try_release_pairs(&lock, &Context::new(), &keys[t], iters).await }
            }))
        })
    });
    group.finish();
}

fn contended_key(c: &mut Criterion) {
    let cores = cores();
    let rt = multi_thread_runtime(cores);
    let table_owner = MemoryLock::new();
    let owners: Vec<Arc<MemoryLock>> = (0..cores)
        .map(|_| Arc::new(table_owner.shared_with()))
        .collect();
    let mut group = c.benchmark_group("memory_lock");
    group.throughput(Throughput::Elements(cores as u64));
    // Every task tries the same key and releases when it got it: measures attempts
    // (successful or not) per second on one hot key.
    group.bench_function(format!("contended_key_try_release/{cores}_tasks"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(time_tasks(owners.len(), |t| {
                let owner = owners[t].clone();
                async move {
                    let ctx = Context::new();
                    for _ in 0..iters {
                        if owner.try_acquire_lock(&ctx, "hot", TTL).await.unwrap() {
                            owner.release_lock(&ctx, "hot").await.unwrap();
                        }
                    }
                }
            }))
        })
    });
    group.finish();
}

criterion_group!(
    benches,
    uncontended_single_task,
    uncontended_task_per_core,
    contended_key
);
criterion_main!(benches);
