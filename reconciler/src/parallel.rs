//! Work over many independent items (files to read, documents to load) spread over the
//! machine's cores, results in the items' order.

/// Below this much work a single thread is faster than starting others: 512 items, or items
/// weighing as much (a file's weight is its size).
const MIN_PER_THREAD: usize = 512;

/// How many threads the work is spread over at most.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `f` of each item, in order, computed on up to one thread per core.
pub fn map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    map_weighed(items, |_| 1, f)
}

/// As [`map`], an item being worth `weight` ordinary items (a thread is started for every
/// 512 ordinary items).
pub fn map_weighed<T: Sync, U: Send>(
    items: &[T],
    weight: impl Fn(&T) -> usize,
    f: impl Fn(&T) -> U + Sync,
) -> Vec<U> {
    concat(map_parts_weighed(items, weight, 1, |part| {
        part.iter().map(&f).collect()
    }))
}

/// `f` of consecutive parts of the items, one part per thread (one part in all when there
/// are few items), in order.
pub fn map_parts<T: Sync, U: Send>(items: &[T], f: impl Fn(&[T]) -> U + Sync) -> Vec<U> {
    map_parts_weighed(items, |_| 1, 1, f)
}

/// As [`map_parts`], with parts of about equal weight: `weight` of an item, and `unit` the
/// weight of an ordinary item (100 files of 100 documents are as much work as 10,000 files of
/// one).
pub fn map_parts_weighed<T: Sync, U: Send>(
    items: &[T],
    weight: impl Fn(&T) -> usize,
    unit: usize,
    f: impl Fn(&[T]) -> U + Sync,
) -> Vec<U> {
    let cuts = cuts(items, weight, unit);
    if cuts.len() == 2 {
        return vec![f(items)];
    }
    let f = &f;
    on_threads(cuts.windows(2).map(|w| move || f(&items[w[0]..w[1]])))
}

/// `f` of consecutive parts of the items, each writing an item's result into the slot of
/// that item in one vector made up front (joining per-thread vectors would hold every result
/// twice at the end), and returning what else it has to say.
pub fn fill<T: Sync, O: Send, R: Send>(
    items: &[T],
    f: impl Fn(&[T], &mut [Option<O>]) -> R + Sync,
) -> (Vec<Option<O>>, Vec<R>) {
    let mut out: Vec<Option<O>> = std::iter::repeat_with(|| None).take(items.len()).collect();
    let cuts = cuts(items, |_| 1, 1);
    let mut slots = Vec::with_capacity(cuts.len());
    let mut rest = out.as_mut_slice();
    for w in cuts.windows(2) {
        let (part, after) = rest.split_at_mut(w[1] - w[0]);
        slots.push(part);
        rest = after;
    }
    let f = &f;
    let said = if slots.len() == 1 {
        vec![f(items, slots[0])]
    } else {
        on_threads(
            cuts.windows(2)
                .zip(slots)
                .map(|(w, slot)| move || f(&items[w[0]..w[1]], slot)),
        )
    };
    (out, said)
}

/// Where the items are cut into parts: `[0, ..., items.len()]`, one part per thread (one part
/// when there is too little work for more), of about equal weight.
fn cuts<T>(items: &[T], weight: impl Fn(&T) -> usize, unit: usize) -> Vec<usize> {
    let weights: Vec<usize> = items.iter().map(|i| weight(i).max(1)).collect();
    let total: usize = weights.iter().sum();
    let threads = cores()
        .min(total / (MIN_PER_THREAD * unit.max(1)))
        .min(items.len())
        .max(1);
    if threads == 1 {
        return vec![0, items.len()];
    }
    // Cut where the running weight passes each thread's share.
    let share = total.div_ceil(threads);
    let mut cuts = vec![0];
    let mut running = 0;
    for (i, w) in weights.iter().enumerate() {
        running += w;
        if running >= share * cuts.len() && i + 1 < items.len() {
            cuts.push(i + 1);
        }
    }
    cuts.push(items.len());
    cuts
}

/// Each job on a thread of its own; their results in order.
fn on_threads<R: Send>(jobs: impl Iterator<Item = impl FnOnce() -> R + Send>) -> Vec<R> {
    std::thread::scope(|scope| {
        let running: Vec<_> = jobs.map(|job| scope.spawn(job)).collect();
        running
            .into_iter()
            // A panic in a job is a bug; it is passed on as it would be without threads.
            .map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// The parts' items in one vector, the first part grown to exactly the size of all (a large
/// vector grows in place, where collecting anew would copy it and doubling would waste up to
/// half).
pub fn concat<T>(parts: Vec<Vec<T>>) -> Vec<T> {
    let total: usize = parts.iter().map(Vec::len).sum();
    let mut parts = parts.into_iter();
    let mut all = parts.next().unwrap_or_default();
    all.reserve_exact(total - all.len());
    for part in parts {
        all.extend(part);
    }
    all
}

#[cfg(test)]
mod tests {
    #[test]
    fn results_keep_the_order_of_the_items() {
        let items: Vec<usize> = (0..10_000).collect();
        let doubled = super::map(&items, |i| i * 2);
        assert_eq!(doubled, (0..10_000).map(|i| i * 2).collect::<Vec<_>>());
        assert!(super::map(&[] as &[u8], |b| *b).is_empty());
    }

    #[test]
    fn weighed_results_keep_the_order_of_the_items() {
        // 100 items worth 8 each: two parts on two cores, one on one.
        let items: Vec<usize> = (0..100).collect();
        let doubled = super::map_weighed(&items, |_| 8, |i| i * 2);
        assert_eq!(doubled, items.iter().map(|i| i * 2).collect::<Vec<_>>());
    }

    #[test]
    fn fill_puts_each_result_in_its_items_slot() {
        // Enough items for every core to take a part; each part reports how many it filled.
        for n in [0, 1, 511, 512, 5_000] {
            let items: Vec<usize> = (0..n).collect();
            let (slots, filled) = super::fill(&items, |part, slots| {
                assert_eq!(part.len(), slots.len());
                for (item, slot) in part.iter().zip(slots) {
                    *slot = (item % 3 != 0).then_some(item * 2);
                }
                part.len()
            });
            assert_eq!(filled.iter().sum::<usize>(), n);
            let expected: Vec<Option<usize>> =
                (0..n).map(|i| (i % 3 != 0).then_some(i * 2)).collect();
            assert_eq!(slots, expected);
        }
    }

    #[test]
    fn weighed_parts_cover_every_item_once_in_order() {
        // A few heavy items among many light ones: every item lands in exactly one part.
        let items: Vec<usize> = (0..3_000)
            .map(|i| if i % 1000 == 0 { 500_000 } else { 1 })
            .collect();
        let parts = super::map_parts_weighed(&items, |w| *w, 1, |part| part.to_vec());
        assert_eq!(parts.concat(), items);
        assert!(parts.iter().all(|p| !p.is_empty()));
        let one = super::map_parts_weighed(&[7usize], |w| *w, 1, |part| part.to_vec());
        assert_eq!(one, vec![vec![7]]);
    }
}
