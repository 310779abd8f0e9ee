//! Interning of the strings the engine sees over and over (labels, versions, segment values):
//! each distinct string is stored once and referred to by a `u32`, which keeps pending join
//! entries and window aggregates small and their comparisons cheap.

use hashbrown::HashMap;

/// A bounded string table: `id` returns `None` once `capacity` strings are held.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Interner {
    ids: HashMap<Box<str>, u32>,
    names: Vec<Box<str>>,
    capacity: usize,
}

impl Interner {
    pub fn with_capacity_limit(capacity: usize) -> Interner {
        Interner {
            ids: HashMap::new(),
            names: Vec::new(),
            capacity,
        }
    }

    /// The id of `name`, adding it if there is room.
    pub fn id(&mut self, name: &str) -> Option<u32> {
        if let Some(&id) = self.ids.get(name) {
            return Some(id);
        }
        if self.names.len() >= self.capacity {
            return None;
        }
        let id = u32::try_from(self.names.len()).ok()?;
        self.ids.insert(name.into(), id);
        self.names.push(name.into());
        Some(id)
    }

    /// The id of `name` if it is already known.
    pub fn get(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    pub fn name(&self, id: u32) -> &str {
        self.names.get(id as usize).map(|n| &**n).unwrap_or("")
    }

    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
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
}
