//! The keys a batch looks up when the table's key is a single integer
//! column (the common `BIGINT` primary key), in the two forms the planner
//! searches a data file's key column with: sorted (binary-searched in a file
//! whose column is in key order) and as a membership test for each value of
//! a file that is not (a snapshot copied by several connections, whose
//! chunks interleave).
//!
//! The membership test is what a random-key batch spends its read phase on:
//! every value of every candidate file is tested (30M tests per batch on a
//! 30M-row table). A hash-set probe per value cost ~26 % of the pipeline's
//! CPU there (perf, 2026-12-04). So a value is first tested against a bitmap
//! indexed by the value's low bits: consecutive values of a file touch
//! consecutive bits (the bitmap is read in order, from cache), and almost
//! every value is rejected by one bit test; only a set bit (a wanted key, or
//! another value with the same low bits when the keys span more than the
//! bitmap) is confirmed in the hash set.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;

/// A set of integer key values.
type IntSet = HashSet<i64, BuildHasherDefault<crate::key::FxHasher>>;

/// Largest bitmap, in bits (8 MiB): exact for keys spanning up to 2^26
/// values; wider spans share bits, and the hash set decides.
const MAX_FILTER_BITS: u64 = 1 << 26;

/// The wanted values of a single integer key column.
pub(crate) struct IntLookup {
    sorted: Vec<i64>,
    set: IntSet,
    /// Bit `v & mask` is set for every wanted `v`.
    bits: Vec<u64>,
    mask: u64,
}

impl IntLookup {
    pub fn new(values: impl IntoIterator<Item = i64>) -> Self {
        let mut sorted: Vec<i64> = values.into_iter().collect();
        sorted.sort_unstable();
        sorted.dedup();
        let span = match (sorted.first(), sorted.last()) {
            (Some(&lo), Some(&hi)) => (hi as i128 - lo as i128 + 1).min(MAX_FILTER_BITS as i128) as u64,
            _ => 1,
        };
        let n_bits = span.next_power_of_two().max(64);
        let mut bits = vec![0u64; (n_bits / 64) as usize];
        let mask = n_bits - 1;
        for &v in &sorted {
            let bit = v as u64 & mask;
            bits[(bit / 64) as usize] |= 1 << (bit % 64);
        }
        let set = sorted.iter().copied().collect();
        IntLookup { sorted, set, bits, mask }
    }

    /// The wanted values in ascending order, each once.
    pub fn sorted(&self) -> &[i64] {
        &self.sorted
    }

    /// Whether `v` is wanted.
    #[inline]
    pub fn contains(&self, v: i64) -> bool {
        let bit = v as u64 & self.mask;
        self.bits[(bit / 64) as usize] & (1 << (bit % 64)) != 0 && self.set.contains(&v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_wanted_values_are_contained_whatever_their_span() {
        // Narrow (one bit per value), negative, and wider than the bitmap
        // (values sharing low bits with wanted ones must be rejected).
        let wide = [0, 1 << 26, (1 << 40) + 5, i64::MIN, i64::MAX, -7];
        for wanted in [vec![3, 5, 64, 65, 1000], vec![-10, -1, 0, 2], wide.to_vec()] {
            let lookup = IntLookup::new(wanted.iter().copied().chain(wanted.iter().copied()));
            let mut expected = wanted.clone();
            expected.sort_unstable();
            expected.dedup();
            assert_eq!(lookup.sorted(), expected.as_slice());
            for &w in &wanted {
                assert!(lookup.contains(w), "{w} wanted");
                for other in [w.wrapping_add(1), w.wrapping_sub(1), w.wrapping_add(1 << 26), w.wrapping_add(1 << 27)] {
                    assert_eq!(lookup.contains(other), wanted.contains(&other), "{other} (near {w})");
                }
            }
        }
        let empty = IntLookup::new([]);
        assert!(!empty.contains(0) && empty.sorted().is_empty());
    }
}
