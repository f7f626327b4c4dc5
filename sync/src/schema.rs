//! Collections and the kinds of their fields.
//!
//! A schema is declared in code by the crate that owns the records (the field node, the
//! command center). Fields nobody declared are last-writer-wins, and collections a replica
//! does not know are still stored and forwarded: every stored field state names its own kind,
//! so a hub can relay records it has no schema for.

use std::collections::BTreeMap;

/// How concurrent writes to a field merge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldKind {
    /// Last writer wins by (hybrid logical clock, node name).
    Lww,
    /// Multi-value register: concurrent writes are all kept until a later write supersedes them.
    Mv,
    /// Add-wins observed-remove set of strings (`crdts::Orswot`).
    Set,
    /// Increment/decrement counter (`crdts::PNCounter`).
    Counter,
    /// The maximum over a declared order of states, e.g. `new < acked < resolved < closed`.
    Status(Vec<String>),
}

impl FieldKind {
    /// A short name for messages and the CLI.
    pub fn name(&self) -> &'static str {
        match self {
            FieldKind::Lww => "lww",
            FieldKind::Mv => "mv",
            FieldKind::Set => "set",
            FieldKind::Counter => "counter",
            FieldKind::Status(_) => "status",
        }
    }
}

/// The declared fields of one collection.
#[derive(Debug, Clone, Default)]
pub struct Collection {
    fields: BTreeMap<String, FieldKind>,
    reported: bool,
}

impl Collection {
    /// Declares the collection *reported*: what a site writes in it travels to the replicas
    /// that hold everything (the command center, relays), not to other sites that hold only
    /// the shared collections (see [`crate::interest`]).
    pub fn reported(mut self) -> Self {
        self.reported = true;
        self
    }

    /// Declares a last-writer-wins field.
    pub fn lww(mut self, field: &str) -> Self {
        self.fields.insert(field.to_owned(), FieldKind::Lww);
        self
    }

    /// Declares a multi-value register field.
    pub fn mv(mut self, field: &str) -> Self {
        self.fields.insert(field.to_owned(), FieldKind::Mv);
        self
    }

    /// Declares an add-wins set field.
    pub fn set(mut self, field: &str) -> Self {
        self.fields.insert(field.to_owned(), FieldKind::Set);
        self
    }

    /// Declares a counter field.
    pub fn counter(mut self, field: &str) -> Self {
        self.fields.insert(field.to_owned(), FieldKind::Counter);
        self
    }

    /// Declares a status field with its order, lowest first.
    pub fn status(mut self, field: &str, order: &[&str]) -> Self {
        self.fields.insert(
            field.to_owned(),
            FieldKind::Status(order.iter().map(|s| s.to_string()).collect()),
        );
        self
    }

    /// The declared fields.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &FieldKind)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// Every collection a replica writes, with its fields.
#[derive(Debug, Clone, Default)]
pub struct Schema {
    collections: BTreeMap<String, Collection>,
}

impl Schema {
    /// An empty schema: every field of every collection is last-writer-wins.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a collection.
    pub fn collection(mut self, name: &str, spec: Collection) -> Self {
        self.collections.insert(name.to_owned(), spec);
        self
    }

    /// The kind of `field` in `collection` (undeclared fields are [`FieldKind::Lww`]).
    pub fn kind(&self, collection: &str, field: &str) -> FieldKind {
        self.collections
            .get(collection)
            .and_then(|c| c.fields.get(field))
            .cloned()
            .unwrap_or(FieldKind::Lww)
    }

    /// Whether `collection` is declared reported ([`Collection::reported`]).
    pub fn is_reported(&self, collection: &str) -> bool {
        self.collections.get(collection).is_some_and(|c| c.reported)
    }

    /// The declared collections.
    pub fn collections(&self) -> impl Iterator<Item = (&str, &Collection)> {
        self.collections.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// Collections whose names start with `$` belong to the store itself (membership, revocations).
pub fn is_system_collection(name: &str) -> bool {
    name.starts_with('$')
}

/// Checks a user-supplied collection, record or field name.
pub fn validate_name(what: &'static str, name: &str) -> Result<(), crate::StoreError> {
    if name.is_empty()
        || name.len() > 256
        || name.starts_with('$')
        || name.chars().any(char::is_control)
    {
        return Err(crate::StoreError::InvalidName {
            what,
            name: name.chars().take(64).collect(),
        });
    }
    Ok(())
}
