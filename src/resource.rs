//! [`Resource`]: a handle to one synchronized object.

use crate::engine::Engine;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// A handle to one resource (typically one image buffer). KDS does not care what it is.
///
/// Cloning gives another handle to the same resource. A resource lives as long as any handle
/// or any queued or held set refers to it, so dropping a handle while sets use the resource is
/// safe (spec rule 10). It holds no data itself: keep it next to the buffer it stands for.
/// Handles compare and hash by identity.
///
/// ```
/// use kds::{Resource, ResourceSet};
///
/// struct Buffer {
///     pixels: Vec<u32>,
///     lock: Resource,
/// }
/// let buf = Buffer { pixels: vec![0; 64], lock: Resource::new() };
/// let other = buf.lock.clone();
/// assert!(other == buf.lock); // the same resource: `==` compares identity
/// let _g = ResourceSet::new().shared(&other).wait()?;
/// assert_eq!(buf.pixels.len(), 64);
/// # Ok::<(), kds::Error>(())
/// ```
pub struct Resource<E: Engine> {
    pub(crate) core: Arc<E::Core>,
}

impl<E: Engine> Resource<E> {
    /// A new resource, free. Costs one small allocation.
    pub fn new() -> Self {
        Resource {
            core: Arc::new(E::Core::default()),
        }
    }
}

impl<E: Engine> Default for Resource<E> {
    fn default() -> Self {
        Self::new()
    }
}

impl<E: Engine> Clone for Resource<E> {
    fn clone(&self) -> Self {
        Resource {
            core: Arc::clone(&self.core),
        }
    }
}

/// Two handles are equal when they name the same resource (identity, not contents).
impl<E: Engine> PartialEq for Resource<E> {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.core, &other.core)
    }
}

impl<E: Engine> Eq for Resource<E> {}

impl<E: Engine> Hash for Resource<E> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.core).hash(state);
    }
}

impl<E: Engine> fmt::Debug for Resource<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Resource<{}>({:p}) ", E::NAME, Arc::as_ptr(&self.core))?;
        E::fmt_core(&self.core, f)
    }
}
