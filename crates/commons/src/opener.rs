//! `Opener` and `Closer`: open a list of components in order, close it in reverse.

use std::sync::Arc;

use crate::{Context, Openable, Result};

/// Opens components in order (Pip.Services' `Opener`).
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use async_trait::async_trait;
/// use commons::{Closer, Context, Openable, Opener, Result};
///
/// #[derive(Default)]
/// struct Pool { open: AtomicBool }
///
/// #[async_trait]
/// impl Openable for Pool {
///     fn is_open(&self) -> bool { self.open.load(Ordering::SeqCst) }
///     async fn open(&self, _: &Context) -> Result<()> { self.open.store(true, Ordering::SeqCst); Ok(()) }
///     async fn close(&self, _: &Context) -> Result<()> { self.open.store(false, Ordering::SeqCst); Ok(()) }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let components: Vec<Arc<dyn Openable>> = vec![Arc::new(Pool::default()), Arc::new(Pool::default())];
/// let ctx = Context::new();
/// Opener::open(&ctx, &components).await.unwrap();
/// assert!(Opener::is_open(&components));
/// Closer::close(&ctx, &components).await.unwrap();
/// assert!(!components[0].is_open());
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Opener;

impl Opener {
    /// Opens each component in order and stops at the first error, returning it. The
    /// components opened before the failure stay open: the caller decides whether to close
    /// them (the [`Container`](crate::Container) does).
    pub async fn open(ctx: &Context, components: &[Arc<dyn Openable>]) -> Result<()> {
        for component in components {
            component.open(ctx).await?;
        }
        Ok(())
    }

    /// Whether every component is open (`true` for an empty list).
    pub fn is_open(components: &[Arc<dyn Openable>]) -> bool {
        components.iter().all(|c| c.is_open())
    }
}

/// Closes components in reverse order (Pip.Services' `Closer`).
///
/// See [`Opener`] for an example.
#[derive(Debug, Clone, Copy, Default)]
pub struct Closer;

impl Closer {
    /// Closes each component, last first. A failure does not stop the others from being
    /// closed; the first error met (that is, of the latest component that failed) is
    /// returned once all have been tried.
    pub async fn close(ctx: &Context, components: &[Arc<dyn Openable>]) -> Result<()> {
        let mut first_error = None;
        for component in components.iter().rev() {
            if let Err(e) = component.close(ctx).await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}
