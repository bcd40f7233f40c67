//! A bounded map that forgets the least recently used entry first. The web app keeps several
//! things per job, per browser or per address in memory (the job cache, rate-limit buckets);
//! each of them sits in one of these, so none grows with the number of visitors or jobs.
//!
//! Both operations are O(log n): a hash map holds the values with the tick of their last use,
//! an ordered map holds the ticks.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;

pub struct Lru<K, V> {
    capacity: usize,
    tick: u64,
    entries: HashMap<K, (V, u64)>,
    order: BTreeMap<u64, K>,
}

impl<K: Clone + Eq + Hash, V> Lru<K, V> {
    /// A map of at most `capacity` entries (at least 1).
    pub fn new(capacity: usize) -> Self {
        Lru { capacity: capacity.max(1), tick: 0, entries: HashMap::new(), order: BTreeMap::new() }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn next_tick(&mut self) -> u64 {
        self.tick += 1;
        self.tick
    }

    /// The value at `key`, marked as used now.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let tick = self.next_tick();
        let (k, (_, used)) = self.entries.get_key_value(key)?;
        let (k, used) = (k.clone(), *used);
        self.order.remove(&used);
        self.order.insert(tick, k);
        let entry = self.entries.get_mut(key).expect("present");
        entry.1 = tick;
        Some(&mut entry.0)
    }

    /// The value at `key`, without changing its place.
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.entries.get(key).map(|(v, _)| v)
    }

    /// Put `value` at `key` (as the most recently used); returns the entry evicted to make
    /// room, if any.
    pub fn insert(&mut self, key: K, value: V) -> Option<(K, V)> {
        let tick = self.next_tick();
        if let Some((_, used)) = self.entries.remove(&key) {
            self.order.remove(&used);
        }
        let evicted = if self.entries.len() >= self.capacity { self.pop_oldest() } else { None };
        self.order.insert(tick, key.clone());
        self.entries.insert(key, (value, tick));
        evicted
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let (v, used) = self.entries.remove(key)?;
        self.order.remove(&used);
        Some(v)
    }

    /// Remove and return the least recently used entry.
    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        let (_, k) = self.order.pop_first()?;
        let (v, _) = self.entries.remove(&k).expect("order and entries agree");
        Some((k, v))
    }

    /// Remove every entry for which `drop` says so.
    pub fn drop_where(&mut self, mut drop: impl FnMut(&K, &V) -> bool) {
        let order = &mut self.order;
        self.entries.retain(|k, (v, used)| {
            let gone = drop(k, v);
            if gone {
                order.remove(used);
            }
            !gone
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_entry_goes_first() {
        let mut lru = Lru::new(3);
        for k in ["a", "b", "c"] {
            assert!(lru.insert(k.to_string(), k.len()).is_none());
        }
        assert!(lru.get_mut("a").is_some(), "a is used again: b is now the oldest");
        assert_eq!(lru.insert("d".into(), 1).map(|(k, _)| k), Some("b".into()));
        assert_eq!(lru.len(), 3);
        assert!(lru.peek("b").is_none());
        // Replacing a key does not evict anything.
        assert!(lru.insert("a".into(), 7).is_none());
        assert_eq!(lru.peek("a"), Some(&7));
        assert_eq!(lru.pop_oldest().map(|(k, _)| k), Some("c".into()));
        assert_eq!(lru.remove("d"), Some(1));
        assert_eq!(lru.len(), 1);
    }

    #[test]
    fn never_holds_more_than_its_capacity() {
        let mut lru = Lru::new(100);
        for i in 0..10_000u32 {
            lru.insert(i, i);
            if i % 3 == 0 {
                lru.get_mut(&(i / 2));
            }
        }
        assert_eq!(lru.len(), 100);
        assert_eq!(lru.order.len(), 100, "the order map shrinks with the entries");
        assert!(lru.peek(&9_999).is_some());
        lru.drop_where(|k, _| k % 2 == 0);
        assert_eq!(lru.len(), lru.order.len());
        assert!(lru.len() <= 50);
    }
}
