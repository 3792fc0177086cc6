//! Work over many independent items (files to read, documents to load) spread over the
//! machine's cores, results in the items' order.

/// Below this many items a single thread is faster than starting others.
const MIN_PER_THREAD: usize = 512;

/// `f` of each item, in order, computed on up to one thread per core.
pub fn map<T: Sync, U: Send>(items: &[T], f: impl Fn(&T) -> U + Sync) -> Vec<U> {
    map_parts(items, |part| part.iter().map(&f).collect::<Vec<U>>())
        .into_iter()
        .flatten()
        .collect()
}

/// `f` of consecutive parts of the items, one part per thread (one part in all when there
/// are few items), in order.
pub fn map_parts<T: Sync, U: Send>(items: &[T], f: impl Fn(&[T]) -> U + Sync) -> Vec<U> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(items.len() / MIN_PER_THREAD).max(1);
    if threads == 1 {
        return vec![f(items)];
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || f(part)))
            .collect();
        parts
            .into_iter()
            // A panic in `f` is a bug; it is passed on as it would be without threads.
            .map(|p| p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
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
}
