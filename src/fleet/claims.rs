//! Which processes claim each node name: two live processes under one
//! `fleet.node` are a misconfiguration the budget split must survive.
//!
//! The split ranks nodes by name, so two processes that share a name take
//! one rank's part each, while the links keep at most one of them: the
//! transport treats a second process under a linked name as a duplicate
//! link, and one under a node's own name as a connection to itself, and
//! closes it. Together they hold more than the budget, and a copied config
//! file is enough to cause it. Two kinds of evidence show it:
//!
//! * **Beats.** Each names its sender's incarnation (its start time): a
//!   name heard from two incarnations within `unreachable_after` belongs
//!   to two live processes. (A restart looks the same until the old
//!   incarnation's last beat ages out: a moment on the safe share.)
//! * **Links.** A link closed because its peer's name is this node's own,
//!   or the name of a node already linked from another address. A refused
//!   process only shows again when it dials again (every
//!   `unreachable_after` while it hears no one), so such a claim is kept
//!   for four times as long.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// How many times `unreachable_after` a claim seen on a link is kept.
const LINK_CLAIM_LIFE: u32 = 4;

/// When each incarnation and each address of each node name was last seen.
#[derive(Debug, Default)]
pub(crate) struct Claims {
    incarnations: BTreeMap<String, BTreeMap<u64, Instant>>,
    addresses: BTreeMap<String, BTreeMap<String, Instant>>,
}

impl Claims {
    /// Notes a beat from `incarnation` of `node`.
    pub(crate) fn heard(&mut self, node: &str, incarnation: u64, now: Instant) {
        note(&mut self.incarnations, node, incarnation, now);
    }

    /// Notes that the process listening at `address` calls itself `node`
    /// (from a link, refused or not).
    pub(crate) fn linked(&mut self, node: &str, address: &str, now: Instant) {
        note(&mut self.addresses, node, address.to_string(), now);
    }

    /// Each name claimed by more than one live process, with how many
    /// processes claim it. This process (`me` at `my_address`, started as
    /// `my_incarnation`) always counts. Beats older than `within`, and link
    /// claims older than four times that, are forgotten.
    pub(crate) fn clashes(
        &mut self,
        me: (&str, u64, &str),
        now: Instant,
        within: Duration,
    ) -> BTreeMap<String, u32> {
        let (my_name, my_incarnation, my_address) = me;
        forget(&mut self.incarnations, now, within);
        forget(
            &mut self.addresses,
            now,
            within.saturating_mul(LINK_CLAIM_LIFE),
        );
        let mut clashes = BTreeMap::new();
        let names: BTreeSet<&String> = self
            .incarnations
            .keys()
            .chain(self.addresses.keys())
            .collect();
        for node in names {
            let mine = node == my_name;
            let by_beats = claimants(self.incarnations.get(node), mine.then_some(&my_incarnation));
            let by_links = claimants(
                self.addresses.get(node),
                mine.then(|| my_address.to_string()).as_ref(),
            );
            let processes = by_beats.max(by_links);
            if processes > 1 {
                clashes.insert(node.clone(), processes);
            }
        }
        clashes
    }
}

fn note<K: Ord>(
    claims: &mut BTreeMap<String, BTreeMap<K, Instant>>,
    node: &str,
    claimant: K,
    now: Instant,
) {
    match claims.get_mut(node) {
        Some(claimants) => {
            claimants.insert(claimant, now);
        }
        None => {
            claims.insert(node.to_string(), BTreeMap::from([(claimant, now)]));
        }
    }
}

fn forget<K: Ord>(
    claims: &mut BTreeMap<String, BTreeMap<K, Instant>>,
    now: Instant,
    life: Duration,
) {
    for claimants in claims.values_mut() {
        claimants.retain(|_, at| now.saturating_duration_since(*at) <= life);
    }
    claims.retain(|_, claimants| !claimants.is_empty());
}

/// How many processes claim a name: those seen, plus this process when the
/// name is its own and it is not among them.
fn claimants<K: Ord>(seen: Option<&BTreeMap<K, Instant>>, me: Option<&K>) -> u32 {
    let seen_count = seen.map_or(0, BTreeMap::len);
    let me_extra = usize::from(me.is_some_and(|me| !seen.is_some_and(|s| s.contains_key(me))));
    u32::try_from(seen_count + me_extra).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const AFTER: Duration = Duration::from_secs(1);

    #[test]
    fn test_clashes_when_two_processes_beat_under_one_name_then_counted_until_one_falls_silent() {
        let t0 = Instant::now();
        let mut claims = Claims::default();
        claims.heard("n1", 10, t0);
        claims.heard("n2", 20, t0);
        claims.heard("n1", 11, t0 + Duration::from_millis(100));
        let clashes = claims.clashes(
            ("n2", 20, "127.0.0.1:2"),
            t0 + Duration::from_millis(200),
            AFTER,
        );
        assert_eq!(clashes, BTreeMap::from([("n1".to_string(), 2)]));
        // Incarnation 10 goes silent (it was a restart, or it was stopped).
        claims.heard("n1", 11, t0 + Duration::from_millis(1_050));
        let later = claims.clashes(
            ("n2", 20, "127.0.0.1:2"),
            t0 + Duration::from_millis(1_100),
            AFTER,
        );
        assert!(later.is_empty(), "{later:?}");
    }

    #[test]
    fn test_clashes_when_another_process_uses_my_name_then_it_and_i_are_two() {
        let t0 = Instant::now();
        let mut claims = Claims::default();
        claims.heard("n1", 99, t0);
        let clashes = claims.clashes(("n1", 7, "127.0.0.1:1"), t0, AFTER);
        assert_eq!(clashes, BTreeMap::from([("n1".to_string(), 2)]));
        // My own beats, relayed back to me, are no clash.
        let mut mine = Claims::default();
        mine.heard("n1", 7, t0);
        assert!(mine.clashes(("n1", 7, "127.0.0.1:1"), t0, AFTER).is_empty());
    }

    #[test]
    fn test_clashes_when_each_name_has_one_process_then_none() {
        let t0 = Instant::now();
        let mut claims = Claims::default();
        for (i, node) in ["n1", "n2", "n3"].into_iter().enumerate() {
            claims.heard(node, i as u64, t0);
            claims.heard(node, i as u64, t0 + Duration::from_millis(500));
        }
        assert!(claims
            .clashes(("n1", 0, "127.0.0.1:1"), t0 + AFTER, AFTER)
            .is_empty());
    }

    #[test]
    fn test_clashes_when_links_show_a_second_address_for_a_name_then_counted_for_four_windows() {
        let t0 = Instant::now();
        let mut claims = Claims::default();
        // n2 holds a link to n1 at :1, and refused another "n1" from :9.
        claims.linked("n1", "127.0.0.1:1", t0);
        claims.linked("n1", "127.0.0.1:9", t0);
        let me = ("n2", 20, "127.0.0.1:2");
        let at = |ms| t0 + Duration::from_millis(ms);
        assert_eq!(claims.clashes(me, at(3_900), AFTER).get("n1"), Some(&2));
        assert!(claims.clashes(me, at(4_100), AFTER).is_empty());
        // A process at another address that calls itself by my name.
        claims.linked("n2", "127.0.0.1:7", at(5_000));
        assert_eq!(claims.clashes(me, at(5_000), AFTER).get("n2"), Some(&2));
        // My own address is me, not a second claimant.
        let mut mine = Claims::default();
        mine.linked("n2", "127.0.0.1:2", t0);
        assert!(mine.clashes(me, t0, AFTER).is_empty());
    }
}
