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
    concat(map_parts(items, |part| part.iter().map(&f).collect()))
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
    let weights: Vec<usize> = items.iter().map(|i| weight(i).max(1)).collect();
    let total: usize = weights.iter().sum();
    let threads = cores()
        .min(total / (MIN_PER_THREAD * unit.max(1)))
        .min(items.len())
        .max(1);
    if threads == 1 {
        return vec![f(items)];
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
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = cuts
            .windows(2)
            .map(|w| &items[w[0]..w[1]])
            .map(|part| scope.spawn(move || f(part)))
            .collect();
        parts
            .into_iter()
            // A panic in `f` is a bug; it is passed on as it would be without threads.
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
