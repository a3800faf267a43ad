//! Shared services handed to operators by the program that hosts them (e.g. a DHT
//! client for `sink.dht`), looked up by type. The stream crate itself knows none of them.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A type map of shared, thread-safe values.
#[derive(Clone, Default)]
pub struct Extensions {
    map: Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl Extensions {
    /// Adds (or replaces) the value of type `T`.
    pub fn insert<T: Send + Sync + 'static>(&mut self, value: T) {
        Arc::make_mut(&mut self.map).insert(TypeId::of::<T>(), Arc::new(value));
    }

    /// The value of type `T`, if one was provided.
    pub fn get<T: Send + Sync + 'static>(&self) -> Option<Arc<T>> {
        self.map
            .get(&TypeId::of::<T>())
            .cloned()
            .and_then(|v| v.downcast::<T>().ok())
    }
}

impl fmt::Debug for Extensions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Extensions({} values)", self.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_found_by_type() {
        let mut e = Extensions::default();
        assert!(e.get::<String>().is_none());
        e.insert(String::from("dht"));
        e.insert(5u32);
        let copy = e.clone();
        assert_eq!(
            copy.get::<String>().as_deref().map(String::as_str),
            Some("dht")
        );
        assert_eq!(copy.get::<u32>().as_deref(), Some(&5));
        assert!(copy.get::<u64>().is_none());
    }
}
