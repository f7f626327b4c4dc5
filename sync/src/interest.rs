//! What a replica holds: everything, or the shared collections and its own reports.
//!
//! In a hub-and-spoke deployment most records are *reports*: a site's vessel tracks, alerts,
//! gate passages and health, which matter at the site that wrote them and at the command
//! center, not at the other hundred sites. Replicating them everywhere costs every site N
//! times its own traffic (the command center forwards each site's records to every other
//! site). A collection declared [`crate::Collection::reported`] travels only to replicas that
//! hold [`Interest::Everything`] (the command center, relays); a replica with
//! [`Interest::Shared`] holds the shared collections (trust lists, membership, revocations)
//! and its own reports, with whatever others wrote to them.
//!
//! A write to a reported record goes to the record's *home*, the site that reported it: an
//! acknowledgement made at the command center reaches the site, an edit made at one site never
//! reaches another. The writer decides: a record it creates is its own; a record it finds was
//! reported by another node belongs to that node.
//!
//! Version vectors stay exact because reported writes go under a *routed origin* per writer
//! and home: `yokohama@yokohama` for what Yokohama reports, `hq@yokohama` for what headquarters
//! wrote to Yokohama's records (node names cannot contain `@`, see
//! [`crate::pki::validate_node_name`]). All of a node's origins draw their sequence numbers
//! from the node's one counter, so each has gaps where the others wrote, and "every change of
//! this origin up to n" is still exact for each. A replica that leaves out `hq@tsushima`
//! simply has no component for it; one that holds it has all of it, and the component of `hq`
//! says nothing about `hq@tsushima`. So a vector never claims what a replica filtered out,
//! however many hops the data took, and a sender decides from the origin's name alone,
//! without knowing the collection's schema.

use crate::vv::VersionVector;

/// The origin under which `writer` writes to the reported records of `home`.
pub fn routed_origin(writer: &str, home: &str) -> String {
    format!("{writer}@{home}")
}

/// The origin under which `node` writes the records it reports itself.
pub fn reports_origin(node: &str) -> String {
    routed_origin(node, node)
}

/// The home of a routed origin's records (`None` for a node's plain origin).
pub fn home_of(origin: &str) -> Option<&str> {
    origin.split_once('@').map(|(_, home)| home)
}

/// The node that writes under `origin`.
pub fn member_of(origin: &str) -> &str {
    origin.split_once('@').map_or(origin, |(writer, _)| writer)
}

/// What a replica holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Interest {
    /// Every collection, every origin's reports (a command center, a relay between sites).
    #[default]
    Everything,
    /// The shared collections, and of the reported ones only this replica's own records (a
    /// site that talks to the command center directly).
    Shared,
}

impl Interest {
    /// Its name in configuration files and on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Interest::Everything => "everything",
            Interest::Shared => "shared",
        }
    }

    /// Parses [`Interest::name`].
    pub fn from_name(name: &str) -> Option<Interest> {
        match name {
            "everything" => Some(Interest::Everything),
            "shared" => Some(Interest::Shared),
            _ => None,
        }
    }

    /// Whether `holder`, with this interest, takes entries of `origin`.
    pub fn wants(self, holder: &str, origin: &str) -> bool {
        match self {
            Interest::Everything => true,
            Interest::Shared => home_of(origin).is_none_or(|home| home == holder),
        }
    }

    /// The part of `vv` that concerns `holder`: what may be claimed to it, or asked of it.
    pub fn scope(self, holder: &str, vv: &VersionVector) -> VersionVector {
        match self {
            Interest::Everything => vv.clone(),
            Interest::Shared => {
                let mut out = VersionVector::new();
                for (origin, seq) in vv.iter().filter(|(o, _)| self.wants(holder, o)) {
                    out.raise(origin, seq);
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shared_replica_takes_shared_origins_and_its_own_records() {
        assert_eq!(reports_origin("narita"), "narita@narita");
        assert_eq!(routed_origin("hq", "narita"), "hq@narita");
        assert_eq!(home_of("hq@narita"), Some("narita"));
        assert_eq!(home_of("narita"), None);
        assert_eq!(member_of("hq@narita"), "hq");
        assert_eq!(member_of("narita"), "narita");
        let shared = Interest::Shared;
        assert!(shared.wants("narita", "hq"));
        assert!(shared.wants("narita", "tsushima"));
        assert!(shared.wants("narita", "narita@narita"));
        assert!(shared.wants("narita", "hq@narita"));
        assert!(!shared.wants("narita", "tsushima@tsushima"));
        assert!(!shared.wants("narita", "hq@tsushima"));
        assert!(Interest::Everything.wants("narita", "tsushima@tsushima"));
        let mut vv = VersionVector::new();
        vv.raise("hq", 4);
        vv.raise("tsushima@tsushima", 9);
        vv.raise("narita@narita", 7);
        vv.raise("hq@narita", 5);
        let scoped = shared.scope("narita", &vv);
        assert_eq!(scoped.get("hq"), 4);
        assert_eq!(scoped.get("narita@narita"), 7);
        assert_eq!(scoped.get("hq@narita"), 5);
        assert_eq!(scoped.get("tsushima@tsushima"), 0);
        assert_eq!(Interest::Everything.scope("narita", &vv), vv);
        for i in [Interest::Everything, Interest::Shared] {
            assert_eq!(Interest::from_name(i.name()), Some(i));
        }
        assert_eq!(Interest::from_name("all"), None);
    }
}
