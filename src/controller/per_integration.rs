//! What the operator keeps in memory per integration, keyed by
//! `(namespace, name)`, and dropped when the integration is deleted.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// A map from `(namespace, name)` of an integration to what is kept for it.
pub struct PerIntegration<V> {
    map: Mutex<HashMap<(String, String), V>>,
}

impl<V> Default for PerIntegration<V> {
    fn default() -> Self {
        PerIntegration { map: Mutex::new(HashMap::new()) }
    }
}

impl<V> PerIntegration<V> {
    pub fn lock(&self) -> MutexGuard<'_, HashMap<(String, String), V>> {
        self.map.lock().unwrap()
    }

    pub fn forget(&self, namespace: &str, name: &str) {
        self.lock().remove(&(namespace.to_string(), name.to_string()));
    }

    /// Keep only the integrations `keep` says exist; how many were dropped.
    pub fn retain(&self, keep: impl Fn(&(String, String)) -> bool) -> usize {
        let mut map = self.lock();
        let before = map.len();
        map.retain(|k, _| keep(k));
        before - map.len()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
