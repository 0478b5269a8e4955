//! `tributary generate`: the reference system's four schemas and a seeded,
//! reproducible stream of inserts, updates and deletes into them. This module
//! is pure (no I/O): [`Generator::next_statement`] gives the same SQL sequence
//! for the same seed and the same starting tables; the command runs it.

pub mod rng;
pub mod schemas;

use rng::Rng;
use schemas::RefSchema;

/// Shares of the operations, in percent: the rest are deletes.
const INSERT_PCT: u64 = 60;
const UPDATE_PCT: u64 = 30;

/// What a statement does, for the progress counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Insert,
    Update,
    Delete,
}

/// The live ids of one table as the generator tracks them.
#[derive(Debug, Clone, Default)]
pub struct TableState {
    pub live: Vec<i64>,
    pub next_id: i64,
}

impl TableState {
    /// State from the ids the table already holds (sorted, so the sequence depends only on the contents).
    pub fn from_ids(mut ids: Vec<i64>) -> Self {
        ids.sort_unstable();
        let next_id = ids.last().map_or(1, |m| m + 1);
        TableState { live: ids, next_id }
    }
}

/// A seeded statement source over the selected schemas of one database.
pub struct Generator {
    database: String,
    rng: Rng,
    tables: Vec<(RefSchema, TableState)>,
    step: u64,
}

impl Generator {
    pub fn new(database: &str, seed: u64, tables: Vec<(RefSchema, TableState)>) -> Self {
        Generator { database: database.to_string(), rng: Rng::new(seed), tables, step: 0 }
    }

    /// Live ids of a table, for references (orders → customers, inventory → products); 0 when none.
    fn pick_ref(&mut self, schema: RefSchema) -> i64 {
        let Some(pos) = self.tables.iter().position(|(s, _)| *s == schema) else {
            return 1 + self.rng.below(1000) as i64;
        };
        let n = self.tables[pos].1.live.len() as u64;
        if n == 0 {
            return 0;
        }
        let i = self.rng.below(n) as usize;
        self.tables[pos].1.live[i]
    }

    /// The next statement and what it does.
    pub fn next_statement(&mut self) -> (Op, String) {
        self.step += 1;
        let t = self.rng.below(self.tables.len() as u64) as usize;
        let schema = self.tables[t].0;
        let table = format!("`{}`.`{}`", self.database.replace('`', "``"), schema.name());
        let roll = self.rng.below(100);
        let live = self.tables[t].1.live.len() as u64;
        let op = if live == 0 || roll < INSERT_PCT {
            Op::Insert
        } else if roll < INSERT_PCT + UPDATE_PCT {
            Op::Update
        } else {
            Op::Delete
        };
        // Times are a function of the step, never the wall clock.
        let at = format!("TIMESTAMPADD(MICROSECOND, {}, '2026-01-01 00:00:00')", self.step * 1_000_537);
        let sql = match op {
            Op::Insert => {
                let id = self.tables[t].1.next_id;
                self.tables[t].1.next_id += 1;
                self.tables[t].1.live.push(id);
                let reference = match schema {
                    RefSchema::Orders => self.pick_ref(RefSchema::Customers),
                    RefSchema::InventoryTransactions => self.pick_ref(RefSchema::Products),
                    _ => 0,
                };
                let values = schema.insert_values(&mut self.rng, id, reference, &at);
                format!("INSERT INTO {table} ({}) VALUES ({values})", schema.columns())
            }
            Op::Update => {
                let id = self.tables[t].1.live[self.rng.below(live) as usize];
                format!("UPDATE {table} SET {} WHERE id = {id}", schema.update_set(&mut self.rng, &at))
            }
            Op::Delete => {
                let i = self.rng.below(live) as usize;
                let id = self.tables[t].1.live.swap_remove(i);
                format!("DELETE FROM {table} WHERE id = {id}")
            }
        };
        (op, sql)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn generator(seed: u64) -> Generator {
        let tables = RefSchema::ALL.iter().map(|s| (*s, TableState::default())).collect();
        Generator::new("shop", seed, tables)
    }

    #[test]
    fn same_seed_same_statements_other_seed_others() {
        let first = generator(7).next_statement().1;
        let mut g1 = generator(7);
        let mut g2 = generator(7);
        let mut g3 = generator(8);
        let s1: Vec<String> = (0..500).map(|_| g1.next_statement().1).collect();
        let s2: Vec<String> = (0..500).map(|_| g2.next_statement().1).collect();
        let s3: Vec<String> = (0..500).map(|_| g3.next_statement().1).collect();
        assert_eq!(s1, s2);
        assert_ne!(s1, s3);
        assert_eq!(first, s1[0]);
        for op in ["INSERT", "UPDATE", "DELETE"] {
            assert!(s1.iter().any(|s| s.starts_with(op)), "{op} occurs");
        }
    }

    #[test]
    fn starting_ids_continue_after_the_existing_ones() {
        let state = TableState::from_ids(vec![5, 2, 9]);
        assert_eq!(state.next_id, 10);
        assert_eq!(state.live, vec![2, 5, 9]);
    }
}
