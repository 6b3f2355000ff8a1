//! Parsing (and evaluating) a 10,000-character prompt. The target: well under a millisecond
//! per 1000 characters.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use sd_prompt::{Prompt, Steps};

/// A realistic long prompt: emphasis, editing, alternation, AND, BREAK, escapes, embeddings.
fn long_prompt(len: usize) -> String {
    let pieces = [
        "masterpiece, (best quality:1.2), ",
        "a photo of (realbenny-t2:1.1) as a [pixar|disney] character, ",
        "[realbenny-t1:yoda:0.5], ((sharp focus)), [[blurry]], ",
        "\\(studio\\) lighting, [cinematic::0.8] BREAK ",
        "art by artgerm and greg rutkowski, [a:[b:c:3]:0.25] AND ",
        "half (realbenny-t1 | yoda) person, star war :0.8 AND ",
    ];
    let mut s = String::new();
    let mut i = 0;
    while s.len() < len {
        s.push_str(pieces[i % pieces.len()]);
        i += 1;
    }
    s.truncate(len);
    s
}

fn bench(c: &mut Criterion) {
    let text = long_prompt(10_000);
    let mut group = c.benchmark_group("prompt_10k");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.bench_function("parse", |b| b.iter(|| Prompt::parse(black_box(&text))));
    let prompt = Prompt::parse(&text);
    group.bench_function("evaluate_20_steps", |b| {
        b.iter(|| black_box(&prompt).evaluate(&Steps::new(20)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
