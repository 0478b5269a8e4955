//! The reference system's four schemas: DDL, and the values of generated rows.

use super::rng::Rng;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefSchema {
    Customers,
    Orders,
    Products,
    InventoryTransactions,
}

const FIRST: &[&str] = &["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Niklaus"];
const LAST: &[&str] = &["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman"];
const ADJECTIVE: &[&str] = &["Small", "Large", "Blue", "Steel", "Wooden", "Quiet", "Rapid", "Compact"];
const NOUN: &[&str] = &["Widget", "Gadget", "Lamp", "Chair", "Kettle", "Drill", "Bottle", "Cable"];
const TIERS: &[&str] = &["bronze", "silver", "gold", "platinum"];
const ORDER_STATUS: &[&str] = &["new", "paid", "shipped", "delivered", "cancelled"];
const PRODUCT_STATUS: &[&str] = &["active", "backorder", "discontinued"];
const KINDS: &[&str] = &["receipt", "sale", "adjustment", "return"];

impl RefSchema {
    pub const ALL: [RefSchema; 4] =
        [RefSchema::Customers, RefSchema::Orders, RefSchema::Products, RefSchema::InventoryTransactions];

    pub fn name(self) -> &'static str {
        match self {
            RefSchema::Customers => "customers",
            RefSchema::Orders => "orders",
            RefSchema::Products => "products",
            RefSchema::InventoryTransactions => "inventory_transactions",
        }
    }

    pub fn parse(name: &str) -> Option<RefSchema> {
        RefSchema::ALL.into_iter().find(|s| s.name() == name.trim())
    }

    /// `CREATE TABLE IF NOT EXISTS` for `database`.
    pub fn ddl(self, database: &str) -> String {
        let body = match self {
            RefSchema::Customers => {
                "id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL, email VARCHAR(200) NOT NULL, \
                 tier ENUM('bronze','silver','gold','platinum') NOT NULL, balance DECIMAL(12,2) NOT NULL, \
                 created_at DATETIME(6) NOT NULL, updated_at DATETIME(6) NULL"
            }
            RefSchema::Orders => {
                "id BIGINT NOT NULL PRIMARY KEY, customer_id BIGINT NOT NULL, \
                 status ENUM('new','paid','shipped','delivered','cancelled') NOT NULL, total DECIMAL(12,2) NOT NULL, \
                 item_count INT NOT NULL, ordered_at DATETIME(6) NOT NULL, updated_at DATETIME(6) NULL, \
                 KEY (customer_id)"
            }
            RefSchema::Products => {
                "id BIGINT NOT NULL PRIMARY KEY, sku VARCHAR(32) NOT NULL, name VARCHAR(100) NOT NULL, \
                 price DECIMAL(10,2) NOT NULL, stock INT NOT NULL, \
                 status ENUM('active','backorder','discontinued') NOT NULL, updated_at DATETIME(6) NOT NULL"
            }
            RefSchema::InventoryTransactions => {
                "id BIGINT NOT NULL PRIMARY KEY, product_id BIGINT NOT NULL, \
                 kind ENUM('receipt','sale','adjustment','return') NOT NULL, quantity INT NOT NULL, \
                 unit_cost DECIMAL(10,2) NOT NULL, note VARCHAR(200) NULL, created_at DATETIME(6) NOT NULL, \
                 KEY (product_id)"
            }
        };
        format!("CREATE TABLE IF NOT EXISTS `{}`.`{}` ({body}) ENGINE=InnoDB", database.replace('`', "``"), self.name())
    }

    /// The columns an insert sets, in the order of [`RefSchema::insert_values`].
    pub fn columns(self) -> &'static str {
        match self {
            RefSchema::Customers => "id, name, email, tier, balance, created_at",
            RefSchema::Orders => "id, customer_id, status, total, item_count, ordered_at",
            RefSchema::Products => "id, sku, name, price, stock, status, updated_at",
            RefSchema::InventoryTransactions => "id, product_id, kind, quantity, unit_cost, note, created_at",
        }
    }

    /// SQL values of a new row; `reference` is the customer / product it points to.
    pub fn insert_values(self, rng: &mut Rng, id: i64, reference: i64, at: &str) -> String {
        match self {
            RefSchema::Customers => {
                let (first, last) = (rng.pick(FIRST), rng.pick(LAST));
                format!(
                    "{id}, '{first} {last}', '{}.{}{id}@example.com', '{}', {}, {at}",
                    first.to_lowercase(),
                    last.to_lowercase(),
                    rng.pick(TIERS),
                    rng.money(10_000)
                )
            }
            RefSchema::Orders => {
                format!("{id}, {reference}, 'new', {}, {}, {at}", rng.money(2_000), 1 + rng.below(9))
            }
            RefSchema::Products => format!(
                "{id}, 'SKU-{id:06}', '{} {}', {}, {}, '{}', {at}",
                rng.pick(ADJECTIVE),
                rng.pick(NOUN),
                rng.money(500),
                rng.below(1_000),
                rng.pick(PRODUCT_STATUS)
            ),
            RefSchema::InventoryTransactions => {
                let kind = rng.pick(KINDS);
                let qty = 1 + rng.below(50) as i64;
                let qty = if kind == "sale" { -qty } else { qty };
                let note =
                    if rng.below(4) == 0 { "NULL".to_string() } else { format!("'batch {}'", rng.below(10_000)) };
                format!("{id}, {reference}, '{kind}', {qty}, {}, {note}, {at}", rng.money(200))
            }
        }
    }

    /// The `SET` list of an update.
    pub fn update_set(self, rng: &mut Rng, at: &str) -> String {
        match self {
            RefSchema::Customers => {
                format!("tier = '{}', balance = {}, updated_at = {at}", rng.pick(TIERS), rng.money(10_000))
            }
            RefSchema::Orders => {
                format!("status = '{}', total = {}, updated_at = {at}", rng.pick(ORDER_STATUS), rng.money(2_000))
            }
            RefSchema::Products => {
                format!("price = {}, stock = {}, updated_at = {at}", rng.money(500), rng.below(1_000))
            }
            RefSchema::InventoryTransactions => {
                format!("quantity = {}, note = 'corrected'", 1 + rng.below(50))
            }
        }
    }
}
