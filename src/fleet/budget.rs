//! Splitting a shared dependency's rate limits between the live nodes.
//!
//! Every node computes the same split from the same view: the live nodes
//! sorted by name, node `rank` of `of` takes `limit / of` plus one of the
//! remainder if `rank < limit % of`, so the parts add up to the limit.
//!
//! Views differ while a node joins or leaves, so a node never *grows* on
//! its own view alone: it shrinks at once, and takes more only when every
//! live peer announces the same membership (so all targets come from one
//! split) and the shares they announced leave room for it under every
//! limit (shrink before you grow). Room is judged on every share each
//! other node held within the dependency's longest window (a minute for
//! Kite), including a node lost in that time: requests sent under a larger
//! share still count at the dependency until they leave its window. A node
//! that has not heard from the fleet yet holds nothing; one cut off from it
//! for `unreachable_after` drops to the budget divided by the largest fleet
//! it has seen, and so does every node of a group that is not a strict
//! majority of that fleet (one side of a partition whose other side may
//! still be trading). While a node name is claimed by two live processes
//! (see `claims.rs`), every node that hears it holds that equal part too:
//! ranks by name no longer tell the processes apart.

use crate::cell::FleetShare;

/// What this node sees when it plans its share of one shared dependency.
pub(crate) struct View<'a> {
    /// This node's name.
    pub(crate) me: &'a str,
    /// The live peers' names and the shares they announced for this
    /// dependency (`None`: they do not use it).
    pub(crate) peers: &'a [(&'a str, Option<FleetShare>)],
    /// Every share each other node (live, or lost within the window) held
    /// within the dependency's longest window. Empty: judge on `peers`.
    pub(crate) held: &'a [Vec<FleetShare>],
    /// Whether this node has heard from the fleet since it started (or
    /// since it was last cut off): until then it holds nothing.
    pub(crate) settled: bool,
    /// The largest number of live nodes (this one included) seen so far.
    pub(crate) largest_seen: u32,
    /// Every limit of the dependency (requests per window), all classes.
    pub(crate) limits: &'a [u32],
    /// Whether every live peer announced the same set of live nodes as
    /// this node sees: only then may a share grow.
    pub(crate) agreed: bool,
    /// Whether some node name (this node's or a peer's) is claimed by two
    /// live processes: `largest_seen` then counts each of them.
    pub(crate) clash: bool,
}

/// The share this node may hold now, given what it holds (`current`).
pub(crate) fn plan(view: &View<'_>, current: FleetShare) -> FleetShare {
    if view.peers.is_empty() {
        // Alone: cut off (or the last one left); the safe share.
        return if view.settled {
            FleetShare::safe(view.largest_seen)
        } else {
            FleetShare::NONE
        };
    }
    let target = target(view);
    let fits = |share: FleetShare| {
        view.limits.iter().all(|&limit| {
            let others: u64 = if view.held.is_empty() {
                view.peers
                    .iter()
                    .filter_map(|(_, s)| s.map(|s| u64::from(s.allowance(limit))))
                    .sum()
            } else {
                view.held
                    .iter()
                    .map(|shares| {
                        let most = shares.iter().map(|s| s.allowance(limit)).max();
                        u64::from(most.unwrap_or(0))
                    })
                    .sum()
            };
            others + u64::from(share.allowance(limit)) <= u64::from(limit)
        })
    };
    let shrinks = |share: FleetShare| {
        view.limits
            .iter()
            .all(|&limit| share.allowance(limit) <= current.allowance(limit))
    };
    if shrinks(target) || (view.agreed && fits(target)) {
        return target;
    }
    // The others have not made room yet. A pure growth waits; a target
    // that takes more of one limit and less of another holds no more than
    // the smallest equal part meanwhile.
    let grows_only = view
        .limits
        .iter()
        .all(|&limit| target.allowance(limit) >= current.allowance(limit));
    if grows_only {
        return current;
    }
    let interim = FleetShare::safe(target.of.max(current.of));
    if shrinks(interim) {
        interim
    } else {
        current
    }
}

/// The split of this view: rank among the live nodes sorted by name.
///
/// Only a strict majority of the largest fleet seen splits the whole
/// budget. A smaller group may be one side of a partition whose other side
/// still trades (a silent peer that crashed and one cut off look the same),
/// so it holds an equal part of that fleet, as a node alone does: two
/// groups can then never both hold the whole.
fn target(view: &View<'_>) -> FleetShare {
    let live = u64::try_from(view.peers.len() + 1).unwrap_or(u64::MAX);
    if view.clash || live.saturating_mul(2) <= u64::from(view.largest_seen) {
        return FleetShare::safe(view.largest_seen);
    }
    let rank = view
        .peers
        .iter()
        .filter(|(name, _)| *name < view.me)
        .count();
    FleetShare {
        rank: u32::try_from(rank).unwrap_or(u32::MAX),
        of: u32::try_from(view.peers.len() + 1).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const LIMITS: &[u32] = &[10, 400, 1];

    fn view<'a>(me: &'a str, peers: &'a [(&'a str, Option<FleetShare>)]) -> View<'a> {
        View {
            me,
            peers,
            settled: true,
            largest_seen: 3,
            limits: LIMITS,
            agreed: true,
            held: &[],
            clash: false,
        }
    }

    #[test]
    fn test_plan_when_three_agree_then_parts_add_up_to_each_limit() {
        let names = ["a", "b", "c"];
        let mut shares = [FleetShare::NONE; 3];
        // Two rounds: every node hears the others' shares of the round before.
        for _ in 0..2 {
            let before = shares;
            for (i, me) in names.iter().enumerate() {
                let peers: Vec<(&str, Option<FleetShare>)> = names
                    .iter()
                    .zip(before)
                    .filter(|(n, _)| *n != me)
                    .map(|(n, s)| (*n, Some(s)))
                    .collect();
                shares[i] = plan(&view(me, &peers), before[i]);
            }
        }
        for &limit in LIMITS {
            let total: u32 = shares.iter().map(|s| s.allowance(limit)).sum();
            assert_eq!(total, limit, "{shares:?}");
        }
        assert_eq!(shares[0].allowance(10), 4);
        assert_eq!(shares[2].allowance(10), 3);
    }

    #[test]
    fn test_plan_when_joining_while_others_hold_halves_then_waits_until_they_shrink() {
        let half = |rank| FleetShare { rank, of: 2 };
        let peers = [("a", Some(half(0))), ("b", Some(half(1)))];
        let mine = plan(&view("c", &peers), FleetShare::NONE);
        assert_eq!(mine.allowance(10), 0, "grew into the others' halves");
        let shrunk = [
            ("a", Some(FleetShare { rank: 0, of: 3 })),
            ("b", Some(FleetShare { rank: 1, of: 3 })),
        ];
        assert_eq!(plan(&view("c", &shrunk), mine).allowance(10), 3);
    }

    #[test]
    fn test_plan_when_others_held_more_within_the_window_then_no_growth_until_it_passes() {
        // n3 was killed; a and b would take halves, but n3's third and the
        // other survivor's recent half still count at the dependency.
        let peers = [("b", Some(FleetShare { rank: 1, of: 3 }))];
        let third = |rank| FleetShare { rank, of: 3 };
        let held = [vec![third(1)], vec![third(2)]];
        let v = View {
            held: &held,
            ..view("a", &peers)
        };
        assert_eq!(plan(&v, third(0)).allowance(10), 4, "no growth yet");
        // The window has passed: only b's current share is held.
        let held = [vec![third(1)]];
        let v = View {
            held: &held,
            ..view("a", &peers)
        };
        assert_eq!(plan(&v, third(0)).allowance(10), 5);
    }

    #[test]
    fn test_plan_when_views_disagree_then_nobody_grows() {
        // c is live, but b has not heard from it yet: b's view is {a, b}.
        let peers = [("a", Some(FleetShare::NONE))];
        let b = View {
            agreed: false,
            ..view("b", &peers)
        };
        let c_holds = FleetShare::safe(3);
        assert_eq!(plan(&b, FleetShare::NONE).allowance(10), 0);
        // Had b grown to its half of {a, b}, the three would overrun:
        let greedy = target(&b).allowance(10);
        assert!(greedy + c_holds.allowance(10) + 4 > 10);
    }

    #[test]
    fn test_plan_when_alone_then_safe_share_and_nothing_before_joining() {
        let cut_off = plan(&view("a", &[]), FleetShare { rank: 0, of: 2 });
        assert_eq!(cut_off.allowance(10), 3);
        assert_eq!(cut_off.allowance(1), 0);
        let fresh = View {
            settled: false,
            ..view("a", &[])
        };
        assert_eq!(plan(&fresh, FleetShare::NONE).allowance(400), 0);
    }

    #[test]
    fn test_plan_when_a_node_ignores_the_rule_then_the_sum_check_catches_it() {
        // Planted violation: a planner that takes its target at once.
        let greedy = |v: &View<'_>, _current: FleetShare| target(v);
        let half = |rank| Some(FleetShare { rank, of: 2 });
        let peers = [("a", half(0)), ("b", half(1))];
        let v = view("c", &peers);
        let sum = |mine: FleetShare| 5 + 5 + mine.allowance(10);
        assert!(
            sum(greedy(&v, FleetShare::NONE)) > 10,
            "the check sees the greedy overrun"
        );
        assert!(sum(plan(&v, FleetShare::NONE)) <= 10);
    }

    #[test]
    fn test_plan_when_two_processes_share_a_name_then_everyone_holds_an_equal_part_and_the_sum_fits(
    ) {
        // Two processes both named "a" and one "b", past the window. Each
        // "a" sees "b"; "b" sees one "a" (beats from both, under one name).
        let half = |rank| FleetShare { rank, of: 2 };
        let planned = |clash| {
            let a = |current| {
                plan(
                    &View {
                        clash,
                        ..view("a", &[("b", Some(half(1)))])
                    },
                    current,
                )
            };
            let b = plan(
                &View {
                    clash,
                    ..view("b", &[("a", Some(half(0)))])
                },
                half(1),
            );
            [a(half(0)), a(half(0)), b]
        };
        // Planted violation: without the clash rule, both "a"s take rank 0
        // of 2 and the three hold one and a half budgets.
        let blind = planned(false);
        assert!(blind.iter().map(|s| s.allowance(10)).sum::<u32>() > 10);
        // With it (largest_seen counts the three processes), the sum fits.
        for &limit in LIMITS {
            let total: u32 = planned(true).iter().map(|s| s.allowance(limit)).sum();
            assert!(total <= limit, "{total} of {limit}");
        }
        assert_eq!(planned(true)[0], FleetShare::safe(3));
    }

    #[test]
    fn test_plan_when_the_fleet_partitions_then_only_a_majority_splits_the_whole_budget() {
        let third = |rank| FleetShare { rank, of: 3 };
        // {a, b} | {c} of three, past the window: the majority re-splits
        // the whole budget; c, cut off, keeps its safe third (availability
        // over the budget: see the README's fleet section). Together: the
        // limit plus c's safe share, and never more.
        let a = plan(&view("a", &[("b", Some(third(1)))]), third(0));
        let b = plan(&view("b", &[("a", Some(a))]), third(1));
        let c = plan(&view("c", &[]), third(2));
        for &limit in LIMITS {
            let majority = a.allowance(limit) + b.allowance(limit);
            assert_eq!(majority, limit, "the majority side fits the limit");
            assert_eq!(c.allowance(limit), limit / 3, "the safe share");
        }
        assert_eq!(a.allowance(10) + b.allowance(10) + c.allowance(10), 13);

        // {a, b} | {c, d} of four: neither side is a majority, so each
        // node keeps an equal part of four and the sides together fit.
        // (Planted once: with every group splitting the whole, 20 of 10.)
        let quarter = |rank| FleetShare { rank, of: 4 };
        let four = |me, peer, rank, peer_rank| {
            let peers = [(peer, Some(quarter(peer_rank)))];
            let v = View {
                largest_seen: 4,
                ..view(me, &peers)
            };
            plan(&v, quarter(rank))
        };
        let shares = [
            four("a", "b", 0, 1),
            four("b", "a", 1, 0),
            four("c", "d", 2, 3),
            four("d", "c", 3, 2),
        ];
        for &limit in LIMITS {
            let total: u32 = shares.iter().map(|s| s.allowance(limit)).sum();
            assert!(total <= limit, "{total} > {limit}: {shares:?}");
        }
        // Three of four are a majority again: they split the whole.
        let peers = [("b", Some(quarter(1))), ("c", Some(quarter(2)))];
        let v = View {
            largest_seen: 4,
            ..view("a", &peers)
        };
        assert_eq!(plan(&v, quarter(0)).allowance(9), 3);
    }

    proptest! {
        /// Any partitions of a fleet of five into up to three groups, each
        /// node hearing only its group, past the window (the worst case):
        /// once every node has planned, a majority group's allowances fit
        /// each limit, and every node outside one holds at most an equal
        /// part of five. So two groups never both hold the whole.
        #[test]
        fn prop_plan_when_partitioned_then_only_a_majority_holds_more_than_equal_parts(
            splits in proptest::collection::vec(proptest::collection::vec(0usize..3, 5), 1..20)
        ) {
            let names = ["a", "b", "c", "d", "e"];
            let mut shares: [FleetShare; 5] =
                std::array::from_fn(|i| FleetShare { rank: i as u32, of: 5 });
            for groups in splits {
                for who in 0..5 {
                    let peers: Vec<(&str, Option<FleetShare>)> = (0..5)
                        .filter(|&j| j != who && groups[j] == groups[who])
                        .map(|j| (names[j], Some(shares[j])))
                        .collect();
                    let v = View { me: names[who], peers: &peers, settled: true, largest_seen: 5, limits: LIMITS, agreed: true, held: &[], clash: false };
                    shares[who] = plan(&v, shares[who]);
                }
                for &limit in LIMITS {
                    for group in 0..3 {
                        let members: Vec<usize> = (0..5).filter(|&j| groups[j] == group).collect();
                        let held: u32 = members.iter().map(|&j| shares[j].allowance(limit)).sum();
                        if members.len() * 2 > 5 {
                            prop_assert!(held <= limit, "majority {members:?}: {held} > {limit}");
                        } else {
                            for &j in &members {
                                prop_assert!(
                                    shares[j].allowance(limit) <= limit / 5,
                                    "{} outside a majority holds {:?} of {limit}", names[j], shares[j]
                                );
                            }
                        }
                    }
                }
            }
        }

        /// Any membership changes, heard in any order and at any lag: the
        /// nodes' allowances never add up past a limit, as long as each
        /// node plans from shares the others had actually applied.
        #[test]
        fn prop_plan_never_oversubscribes(
            steps in proptest::collection::vec((0usize..5, proptest::bool::ANY, 0usize..5), 1..60)
        ) {
            let names = ["a", "b", "c", "d", "e"];
            let mut alive = [true, true, true, false, false];
            let mut shares = [FleetShare::NONE; 5];
            let mut settled = [false; 5];
            for (who, toggle, target_node) in steps {
                if toggle && who != target_node {
                    // A node joins or leaves; a leaving node holds nothing.
                    alive[target_node] = !alive[target_node];
                    if !alive[target_node] {
                        shares[target_node] = FleetShare::NONE;
                        settled[target_node] = false;
                    }
                }
                if !alive[who] {
                    continue;
                }
                let peers: Vec<(&str, Option<FleetShare>)> = (0..5)
                    .filter(|&j| j != who && alive[j])
                    .map(|j| (names[j], Some(shares[j])))
                    .collect();
                settled[who] |= !peers.is_empty();
                if peers.is_empty() {
                    // Cut-off shares are the partition case, outside this model.
                    continue;
                }
                let v = View { me: names[who], peers: &peers, settled: settled[who], largest_seen: 5, limits: LIMITS, agreed: true, held: &[], clash: false };
                shares[who] = plan(&v, shares[who]);
                for &limit in LIMITS {
                    let total: u32 = (0..5).filter(|&j| alive[j]).map(|j| shares[j].allowance(limit)).sum();
                    prop_assert!(total <= limit, "{total} > {limit}: {shares:?}");
                }
            }
        }
    }
}
