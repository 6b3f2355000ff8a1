//! torchsde's `BrownianTree` (a `BrownianInterval` with `halfway_tree=True`, `tol=1e-6`,
//! `pool_size=24`, no Lévy area), after `torchsde/_brownian/brownian_interval.py` 0.2.6.
//!
//! The tree is dyadic: every node `[start, end]` splits at `round(½(start + end), 6)`, so its
//! shape — and, because every node's noise is drawn from a generator seeded by numpy's
//! `SeedSequence(entropy, spawn_key=(key, depth))`, every value in it — depends on the
//! entropy alone, never on the order of the queries. torchsde's LRU cache of 45 increments
//! therefore only saves work; this port keeps its own cache of the same kind.

use std::collections::VecDeque;

use super::seed_sequence::SeedSequence;
use crate::RngSource;

/// `BrownianTree(pool_size=24)`.
const POOL_SIZE: usize = 24;
/// Memory for cached node increments per tree (torchsde caches 45 of them). A query touches
/// up to two nodes per tree level (~25 levels for SD's σ range), consecutive queries share
/// most of them, and every miss costs a `randn` of the latent's size: 32 MiB holds 512
/// increments of a 4×64×64 latent.
const CACHE_BYTES: usize = 32 << 20;
/// At least this many increments stay cached, however big the latent.
const MIN_CACHE: usize = 64;

/// torchsde's `_round` for `tol = 1e-6`: Python's `round(x, 6)`, i.e. the double nearest to
/// the decimal that `x` correctly rounds to (half to even) at six places.
pub(crate) fn round6(x: f64) -> f64 {
    if !x.is_finite() {
        return x;
    }
    // Rust formats the exact binary value, rounding half to even, and parses correctly
    // rounded: the same two steps as CPython's `float.__round__`.
    format!("{x:.6}").parse().unwrap_or(x)
}

#[derive(Debug, Clone)]
struct Split {
    midway: f64,
    /// The node's `_W_seed`: seeds the noise that splits its increment between children.
    w_seed: u32,
    left: usize,
    right: usize,
}

#[derive(Debug, Clone)]
struct Node {
    start: f64,
    end: f64,
    parent: usize,
    is_left: bool,
    spawn_key: u128,
    depth: u128,
    split: Option<Split>,
}

/// One Brownian motion on `[t0, t1]` of `numel` independent components (one latent image).
#[derive(Debug, Clone)]
pub(crate) struct BrownianTree {
    entropy: u128,
    numel: usize,
    source: RngSource,
    nodes: Vec<Node>,
    /// The increment over the whole interval (torchsde keeps it out of the LRU cache).
    root_w: Vec<f32>,
    /// Cached increments, most recently used last.
    cache: VecDeque<(usize, Vec<f32>)>,
    /// How many increments `cache` may hold.
    cache_size: usize,
    /// Where the last search ended (`_last_interval`).
    last: usize,
}

impl BrownianTree {
    /// `BrownianTree(t0, w0=zeros(numel), t1, entropy=entropy)` on the device `source`
    /// stands for (torch's CPU generator or CUDA's Philox).
    pub(crate) fn new(t0: f64, t1: f64, numel: usize, entropy: u128, source: RngSource) -> Self {
        let seeds = SeedSequence::with_pool_size(entropy, &[], POOL_SIZE).generate_state(3);
        // `W = randn(initial_W_seed) * math.sqrt(t1 - t0)`, on the unrounded times.
        let scale = (t1 - t0).sqrt() as f32;
        let root_w = randn(source, seeds[0], numel)
            .into_iter()
            .map(|v| v * scale)
            .collect();
        let root = Node {
            start: round6(t0),
            end: round6(t1),
            parent: 0,
            is_left: false,
            spawn_key: 0,
            depth: 0,
            split: None,
        };
        Self {
            entropy,
            numel,
            source,
            nodes: vec![root],
            root_w,
            cache: VecDeque::new(),
            cache_size: (CACHE_BYTES / (4 * numel.max(1))).max(MIN_CACHE),
            last: 0,
        }
    }

    /// `tree(ta, tb)`: the increment `W(tb) − W(ta)`, `ta ≤ tb`, clamped into `[t0, t1]`
    /// as torchsde clamps (it warns).
    pub(crate) fn increment(&mut self, ta: f64, tb: f64) -> Vec<f32> {
        let (start, end) = (self.nodes[0].start, self.nodes[0].end);
        let ta = ta.max(start).min(end);
        let tb = tb.max(start).min(end);
        if ta >= tb {
            // torchsde returns zeros for `ta == tb` (and raises for `ta > tb`, which the
            // batched caller never asks for: it sorts).
            return vec![0.0; self.numel];
        }
        let intervals = self.locate(round6(ta), round6(tb));
        let mut total: Option<Vec<f32>> = None;
        for node in intervals {
            let w = self.node_increment(node);
            total = Some(match total {
                None => w,
                Some(mut acc) => {
                    acc.iter_mut().zip(&w).for_each(|(a, b)| *a += b);
                    acc
                }
            });
        }
        total.unwrap_or_else(|| vec![0.0; self.numel])
    }

    /// `_loc`: the existing (or newly split) nodes that tile `[ta, tb]`, left to right.
    fn locate(&mut self, ta: f64, tb: f64) -> Vec<usize> {
        let mut out = Vec::new();
        // Pending right halves of queries that straddled a midpoint (`_loc_inner` recurses
        // into the left child first, then tail-calls the right one).
        let mut pending: Vec<(usize, f64, f64)> = vec![(self.last, ta, tb)];
        while let Some((mut node, ta, tb)) = pending.pop() {
            loop {
                let n = &self.nodes[node];
                if (ta < n.start || tb > n.end) && node != 0 {
                    node = n.parent;
                    continue;
                }
                if ta == n.start && tb == n.end {
                    out.push(node);
                    break;
                }
                match &n.split {
                    None => {
                        if ta == n.start {
                            self.split(node, tb);
                            node = self.children(node).0;
                        } else {
                            self.split(node, ta);
                            node = self.children(node).1;
                        }
                    }
                    Some(s) => {
                        if tb <= s.midway {
                            node = s.left;
                        } else if ta >= s.midway {
                            node = s.right;
                        } else {
                            pending.push((s.right, s.midway, tb));
                            let left = s.left;
                            let mid = s.midway;
                            // Continue with the left part; the right part waits on the stack.
                            pending.push((left, ta, mid));
                            break;
                        }
                    }
                }
            }
        }
        if let Some(&last) = out.last() {
            self.last = last;
        }
        out
    }

    fn children(&self, node: usize) -> (usize, usize) {
        match &self.nodes[node].split {
            Some(s) => (s.left, s.right),
            None => (node, node),
        }
    }

    /// `_split` of a halfway tree: split at the rounded midpoint, then keep splitting the
    /// child that contains `target` until a midpoint lands on it.
    fn split(&mut self, mut node: usize, target: f64) {
        loop {
            let (start, end) = (self.nodes[node].start, self.nodes[node].end);
            let midway = round6(0.5 * (end + start));
            self.split_exact(node, midway);
            if target > midway {
                node = self.children(node).1;
            } else if target < midway {
                node = self.children(node).0;
            } else {
                return;
            }
            // A node of zero width cannot be split further (torchsde would recurse
            // forever); stop, the search will then find the interval it needs.
            if self.nodes[node].start >= self.nodes[node].end {
                return;
            }
        }
    }

    /// `_split_exact`: two children and the node's seeds from `SeedSequence`.
    fn split_exact(&mut self, node: usize, midway: f64) {
        let (spawn_key, depth) = if node == 0 {
            (0, 0)
        } else {
            let n = &self.nodes[node];
            let p = &self.nodes[n.parent];
            (2 * p.spawn_key + u128::from(!n.is_left), p.depth + 1)
        };
        let seeds = SeedSequence::with_pool_size(self.entropy, &[spawn_key, depth], POOL_SIZE)
            .generate_state(4);
        let (start, end) = (self.nodes[node].start, self.nodes[node].end);
        let left = self.nodes.len();
        let child = |start, end, is_left| Node {
            start,
            end,
            parent: node,
            is_left,
            spawn_key: 0,
            depth: 0,
            split: None,
        };
        self.nodes.push(child(start, midway, true));
        self.nodes.push(child(midway, end, false));
        let n = &mut self.nodes[node];
        n.spawn_key = spawn_key;
        n.depth = depth;
        n.split = Some(Split {
            midway,
            w_seed: seeds[0],
            left,
            right: left + 1,
        });
    }

    /// `_increment_and_space_time_levy_area` without the Lévy area: the node's increment,
    /// from the nearest cached ancestor down through the Brownian bridge of each parent.
    fn node_increment(&mut self, node: usize) -> Vec<f32> {
        let mut path = Vec::new();
        let mut at = node;
        let mut w = loop {
            if at == 0 {
                break self.root_w.clone();
            }
            if let Some(i) = self.cache.iter().position(|(id, _)| *id == at) {
                // Move to the back: most recently used.
                let entry = self.cache.remove(i).unwrap_or_else(|| (at, Vec::new()));
                let w = entry.1.clone();
                self.cache.push_back(entry);
                break w;
            }
            path.push(at);
            at = self.nodes[at].parent;
        };
        for &child in path.iter().rev() {
            let parent = self.nodes[child].parent;
            let Some((left, right)) = self.bridge(parent, &w) else {
                continue;
            };
            // Both children come from the same draw: keep the sibling too, a later piece
            // of this or the next query is often it.
            let (l, r) = self.children(parent);
            if self.nodes[child].is_left {
                self.remember(r, right);
                self.remember(l, left.clone());
                w = left;
            } else {
                self.remember(l, left);
                self.remember(r, right.clone());
                w = right;
            }
        }
        w
    }

    /// One level down: the increments of `parent`'s two children given its own, `w`.
    fn bridge(&self, parent: usize, w: &[f32]) -> Option<(Vec<f32>, Vec<f32>)> {
        let p = &self.nodes[parent];
        let split = p.split.as_ref()?;
        let h_reciprocal = 1.0 / (p.end - p.start);
        let left_diff = split.midway - p.start;
        let right_diff = p.end - split.midway;
        // torch multiplies a float32 tensor by a Python float in float32: each scalar is
        // rounded to f32 first, and `a * W * b` is `(a * W) * b`.
        let a = left_diff as f32;
        let b = h_reciprocal as f32;
        let std = (left_diff * right_diff * h_reciprocal).sqrt() as f32;
        let noise = randn(self.source, split.w_seed, w.len());
        // `left_W = mean + sqrt(var) * noise`; the right child is `W - left_W`.
        let left: Vec<f32> = w
            .iter()
            .zip(noise)
            .map(|(&w, z)| a * w * b + std * z)
            .collect();
        let right = w.iter().zip(&left).map(|(&w, &l)| w - l).collect();
        Some((left, right))
    }

    fn remember(&mut self, node: usize, w: Vec<f32>) {
        if let Some(i) = self.cache.iter().position(|(id, _)| *id == node) {
            self.cache.remove(i);
        }
        if self.cache.len() >= self.cache_size {
            self.cache.pop_front();
        }
        self.cache.push_back((node, w));
    }
}

/// `torch.randn(numel, generator=torch.Generator(device).manual_seed(seed))`.
fn randn(source: RngSource, seed: u32, numel: usize) -> Vec<f32> {
    source.generator(u64::from(seed)).randn(numel)
}
