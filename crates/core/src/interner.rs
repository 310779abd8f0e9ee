//! Interning of the strings the engine sees over and over (labels, versions, segment values):
//! each distinct string is stored once and referred to by a `u32`, which keeps pending join
//! entries and window aggregates small and their comparisons cheap.
//!
//! Lookups happen several times per record, mostly for the same few strings (one version,
//! two labels), so the ids last found are tried first, by comparing bytes, before the
//! string is hashed; the hash index compares its candidates without a library call.

use std::hash::BuildHasher;

use hashbrown::{DefaultHashBuilder, HashTable};

use crate::short_bytes;

/// Ids tried before hashing.
const RECENT: usize = 4;
const NONE: u32 = u32::MAX;

/// A bounded string table: `id` returns `None` once `capacity` strings are held.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(into = "InternerState", from = "InternerState")]
pub struct Interner {
    names: Vec<Box<str>>,
    index: HashTable<u32>,
    hasher: DefaultHashBuilder,
    capacity: usize,
    /// The ids last found, most recent first ([`NONE`] when unused).
    recent: [u32; RECENT],
}

/// The serialized form: the names in id order (the index is rebuilt on load).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct InternerState {
    names: Vec<Box<str>>,
    capacity: usize,
}

impl From<Interner> for InternerState {
    fn from(interner: Interner) -> InternerState {
        InternerState {
            names: interner.names,
            capacity: interner.capacity,
        }
    }
}

impl From<InternerState> for Interner {
    fn from(state: InternerState) -> Interner {
        let mut interner = Interner::with_capacity_limit(state.capacity);
        for name in state.names {
            interner.insert(name);
        }
        interner
    }
}

impl Interner {
    pub(crate) fn with_capacity_limit(capacity: usize) -> Interner {
        Interner {
            names: Vec::new(),
            index: HashTable::new(),
            hasher: DefaultHashBuilder::default(),
            capacity,
            recent: [NONE; RECENT],
        }
    }

    /// The id of `name`, adding it if there is room.
    pub fn id(&mut self, name: &str) -> Option<u32> {
        if let Some(id) = self.get(name) {
            return Some(id);
        }
        if self.names.len() >= self.capacity || u32::try_from(self.names.len()).is_err() {
            return None;
        }
        Some(self.insert(name.into()))
    }

    fn insert(&mut self, name: Box<str>) -> u32 {
        let id = self.names.len() as u32;
        let hash = self.hasher.hash_one(&*name);
        let (names, hasher) = (&self.names, &self.hasher);
        self.index
            .insert_unique(hash, id, |&i| hasher.hash_one(&*names[i as usize]));
        self.names.push(name);
        id
    }

    /// The id of `name` if it is already known (`&mut`: the id moves to the front of those
    /// tried first).
    pub fn get(&mut self, name: &str) -> Option<u32> {
        for at in 0..RECENT {
            let id = self.recent[at];
            if id == NONE {
                break;
            }
            if short_bytes::equal(self.names[id as usize].as_bytes(), name.as_bytes()) {
                self.recent.swap(0, at);
                return Some(id);
            }
        }
        let hash = self.hasher.hash_one(name);
        let names = &self.names;
        let id = *self.index.find(hash, |&i| {
            short_bytes::equal(names[i as usize].as_bytes(), name.as_bytes())
        })?;
        let [a, b, c, _] = self.recent;
        self.recent = [id, a, b, c];
        Some(id)
    }

    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map(|n| &**n).unwrap_or("")
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interns_up_to_capacity() {
        let mut i = Interner::with_capacity_limit(2);
        assert_eq!(i.id("a"), Some(0));
        assert_eq!(i.id("b"), Some(1));
        assert_eq!(i.id("a"), Some(0));
        assert_eq!(i.id("c"), None);
        assert_eq!(i.name(1), "b");
        assert_eq!(i.get("c"), None);
    }

    #[test]
    fn recent_and_hashed_lookups_agree() {
        let mut i = Interner::with_capacity_limit(100);
        let names: Vec<String> = (0..40).map(|n| format!("name-{n}")).collect();
        for n in &names {
            i.id(n);
        }
        // Cycles through more names than the recent list holds, and back.
        for round in 0..3 {
            for (id, n) in names.iter().enumerate().skip(round * 7).step_by(3) {
                assert_eq!(i.get(n), Some(id as u32));
                assert_eq!(i.get(n), Some(id as u32));
            }
        }
        assert_eq!(i.get("name-40"), None);
        let mut restored: Interner =
            serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
        for (id, n) in names.iter().enumerate() {
            assert_eq!(restored.get(n), Some(id as u32));
            assert_eq!(restored.name(id as u32), n);
        }
    }
}
