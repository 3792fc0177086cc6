//! Hash maps and sets with a fast hasher, for the planner's indexes over a million
//! submissions: their keys are names from the definitions and the ledger, not input an
//! attacker chooses to collide, and SipHash was a quarter of the time of a plan.

pub type Map<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;
pub type Set<K> = std::collections::HashSet<K, foldhash::fast::RandomState>;
