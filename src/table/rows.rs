//! Row identity over a set of columns: a 64-bit hash per row (column by column, so the
//! inner loops stay on one typed array) and exact equality through Arrow comparators.
//! [`group_ids`] numbers the distinct rows; duplicate detection, grouped statistics and
//! key lookups are all built on it. Hash collisions cost a comparison, never a wrong
//! answer: two rows share a group only when every cell compares equal.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use arrow::array::{
    Array, ArrayRef, BooleanArray, DynComparator, Float64Array, Int64Array, StringArray,
    TimestampMillisecondArray, make_comparator,
};
use arrow::compute::SortOptions;

const K: u64 = 0x9E37_79B9_7F4A_7C15;
const NULL: u64 = 0x5bd1_e995_1234_5678;

#[inline]
fn mix(mut h: u64) -> u64 {
    h ^= h >> 32;
    h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^= h >> 32;
    h
}

#[inline]
pub fn hash_bytes(b: &[u8]) -> u64 {
    let mut h = (b.len() as u64).wrapping_mul(K);
    let mut chunks = b.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes(c.try_into().unwrap_or([0; 8]));
        h = (h ^ w).wrapping_mul(K).rotate_left(29);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = (h ^ u64::from_le_bytes(w)).wrapping_mul(K).rotate_left(29);
    }
    mix(h)
}

/// Mix one column's cell hashes into `acc`.
fn mix_column(acc: &mut [u64], col: &ArrayRef) {
    let mut put = |i: usize, v: u64| acc[i] = (acc[i].rotate_left(23) ^ v).wrapping_mul(K);
    let any = col.as_any();
    let n = col.len();
    if let Some(a) = any.downcast_ref::<StringArray>() {
        for i in 0..n {
            put(
                i,
                if a.is_null(i) {
                    NULL
                } else {
                    hash_bytes(a.value(i).as_bytes())
                },
            );
        }
    } else if let Some(a) = any.downcast_ref::<Int64Array>() {
        for i in 0..n {
            put(
                i,
                if a.is_null(i) {
                    NULL
                } else {
                    mix(a.value(i) as u64)
                },
            );
        }
    } else if let Some(a) = any.downcast_ref::<Float64Array>() {
        for i in 0..n {
            put(
                i,
                if a.is_null(i) {
                    NULL
                } else {
                    mix(a.value(i).to_bits())
                },
            );
        }
    } else if let Some(a) = any.downcast_ref::<TimestampMillisecondArray>() {
        for i in 0..n {
            put(
                i,
                if a.is_null(i) {
                    NULL
                } else {
                    mix(a.value(i) as u64)
                },
            );
        }
    } else if let Some(a) = any.downcast_ref::<BooleanArray>() {
        for i in 0..n {
            put(
                i,
                if a.is_null(i) {
                    NULL
                } else {
                    a.value(i) as u64 + 1
                },
            );
        }
    } else {
        for i in 0..n {
            let t = crate::table::cell_text(col, i);
            put(i, t.map(|t| hash_bytes(t.as_bytes())).unwrap_or(NULL));
        }
    }
}

/// A hash of every row over `cols`.
pub fn hash_rows(cols: &[&ArrayRef], rows: usize) -> Vec<u64> {
    let mut acc = vec![K; rows];
    for c in cols {
        mix_column(&mut acc, c);
    }
    for h in &mut acc {
        *h = mix(*h);
    }
    acc
}

/// Exact equality of two rows over a set of columns (null equals null).
pub struct RowEq {
    cmps: Vec<DynComparator>,
}

impl RowEq {
    pub fn new(cols: &[&ArrayRef]) -> Result<RowEq, String> {
        let opts = SortOptions::default();
        let cmps = cols
            .iter()
            .map(|c| make_comparator(c.as_ref(), c.as_ref(), opts).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        Ok(RowEq { cmps })
    }

    #[inline]
    pub fn eq(&self, a: usize, b: usize) -> bool {
        self.cmps.iter().all(|c| c(a, b) == Ordering::Equal)
    }
}

/// A hasher for keys that already are hashes.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8) | *b as u64;
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = v;
    }
}

pub type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;

/// Groups of equal rows: `group[row]` for the rows visited (`u32::MAX` for the others),
/// numbered in the order of first appearance in `order`.
pub struct Groups {
    pub group: Vec<u32>,
    /// The first row (in `order`) of each group.
    pub first: Vec<u32>,
}

impl Groups {
    pub fn len(&self) -> usize {
        self.first.len()
    }

    pub fn is_empty(&self) -> bool {
        self.first.is_empty()
    }
}

pub const NO_GROUP: u32 = u32::MAX;

/// Number the distinct rows over `cols`, visiting rows in `order`.
pub fn group_ids(
    cols: &[&ArrayRef],
    rows: usize,
    order: impl Iterator<Item = usize>,
) -> Result<Groups, String> {
    let hashes = hash_rows(cols, rows);
    let eq = RowEq::new(cols)?;
    let mut head: IdMap<u32> = IdMap::default();
    head.reserve(rows.min(1 << 24));
    let mut next: Vec<u32> = Vec::new();
    let mut first: Vec<u32> = Vec::new();
    let mut group = vec![NO_GROUP; rows];
    for row in order {
        let h = hashes[row];
        let g = match head.get(&h) {
            None => {
                let g = first.len() as u32;
                head.insert(h, g);
                first.push(row as u32);
                next.push(NO_GROUP);
                g
            }
            Some(&g0) => {
                let mut g = g0;
                loop {
                    if eq.eq(first[g as usize] as usize, row) {
                        break g;
                    }
                    if next[g as usize] == NO_GROUP {
                        let ng = first.len() as u32;
                        next[g as usize] = ng;
                        first.push(row as u32);
                        next.push(NO_GROUP);
                        break ng;
                    }
                    g = next[g as usize];
                }
            }
        };
        group[row] = g;
    }
    Ok(Groups { group, first })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn groups_equal_rows_and_treats_nulls_as_equal() {
        let a: ArrayRef = Arc::new(StringArray::from(vec![
            Some("x"),
            Some("y"),
            Some("x"),
            None,
            None,
        ]));
        let b: ArrayRef = Arc::new(Int64Array::from(vec![1, 1, 1, 2, 2]));
        let g = group_ids(&[&a, &b], 5, 0..5).unwrap();
        assert_eq!(g.group, vec![0, 1, 0, 2, 2]);
        assert_eq!(g.first, vec![0, 1, 3]);
        let g = group_ids(&[&a, &b], 5, (0..5).rev()).unwrap();
        assert_eq!(g.group, vec![1, 2, 1, 0, 0]);
        assert_eq!(g.first, vec![4, 2, 1]);
    }
}
