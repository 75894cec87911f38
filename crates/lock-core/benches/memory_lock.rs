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
                for i in 0..iters as usize {
                    let key = &keys[i % keys.len()];
                    assert!(lock.try_acquire_lock(&ctx, key, TTL).await.unwrap());
                    lock.release_lock(&ctx, key).await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn uncontended_task_per_core(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
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
            rt.block_on(async {
                let start = Instant::now();
                let mut tasks = Vec::with_capacity(cores);
                for t in 0..cores {
                    let (lock, keys) = (lock.clone(), per_task.clone());
                    tasks.push(tokio::spawn(async move {
                        let ctx = Context::new();
                        let keys = &keys[t];
                        for i in 0..iters as usize {
                            let key = &keys[i % keys.len()];
                            assert!(lock.try_acquire_lock(&ctx, key, TTL).await.unwrap());
                            lock.release_lock(&ctx, key).await.unwrap();
                        }
                    }));
                }
                for task in tasks {
                    task.await.unwrap();
                }
                start.elapsed()
            })
        })
    });
    group.finish();
}

fn contended_key(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .enable_all()
        .build()
        .unwrap();
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
            rt.block_on(async {
                let start = Instant::now();
                let mut tasks = Vec::with_capacity(cores);
                for owner in &owners {
                    let owner = owner.clone();
                    tasks.push(tokio::spawn(async move {
                        let ctx = Context::new();
                        for _ in 0..iters {
                            if owner.try_acquire_lock(&ctx, "hot", TTL).await.unwrap() {
                                owner.release_lock(&ctx, "hot").await.unwrap();
                            }
                        }
                    }));
                }
                for task in tasks {
                    task.await.unwrap();
                }
                start.elapsed()
            })
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
