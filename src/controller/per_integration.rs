//! What the operator keeps in memory per integration, and drops when the
//! integration is deleted.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use crate::crd::IntegrationKey;

/// A map from an integration to what is kept for it.
pub struct PerIntegration<V> {
    map: Mutex<HashMap<IntegrationKey, V>>,
}

impl<V> Default for PerIntegration<V> {
    fn default() -> Self {
        PerIntegration { map: Mutex::new(HashMap::new()) }
    }
}

impl<V> PerIntegration<V> {
    pub fn lock(&self) -> MutexGuard<'_, HashMap<IntegrationKey, V>> {
        self.map.lock().unwrap()
    }

    pub fn forget(&self, key: &IntegrationKey) {
        self.lock().remove(key);
    }

    /// Keep only the integrations `keep` says exist; how many were dropped.
    pub fn retain(&self, keep: impl Fn(&IntegrationKey) -> bool) -> usize {
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
