//! A table of reusable slots, so records can name a visitor or a source by a stable `u32`.

/// A table of reusable slots: a `Vec` and a free list.
pub(super) struct Slots<T> {
    pub items: Vec<Option<T>>,
    free: Vec<u32>,
}

impl<T> Slots<T> {
    pub fn new() -> Self {
        Slots { items: Vec::new(), free: Vec::new() }
    }

    pub fn insert(&mut self, item: T) -> u32 {
        match self.free.pop() {
            Some(slot) => {
                debug_assert!(self.items[slot as usize].is_none());
                self.items[slot as usize] = Some(item);
                slot
            }
            None => {
                self.items.push(Some(item));
                (self.items.len() - 1) as u32
            }
        }
    }

    pub fn get(&self, slot: u32) -> &T {
        self.items[slot as usize].as_ref().expect("slot in use")
    }

    pub fn get_mut(&mut self, slot: u32) -> &mut T {
        self.items[slot as usize].as_mut().expect("slot in use")
    }

    pub fn remove(&mut self, slot: u32) -> T {
        self.free.push(slot);
        self.items[slot as usize].take().expect("slot in use")
    }

    pub fn len(&self) -> usize {
        self.items.len() - self.free.len()
    }

    pub fn heap_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<Option<T>>() + self.free.capacity() * 4
    }
}
