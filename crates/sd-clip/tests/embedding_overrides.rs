//! Textual-inversion vectors spliced into the forward pass: where they land, and that on an
//! autodiff device the gradient reaches them and not the frozen weights.

mod common;

use burn::{
    module::Module,
    tensor::{Device, Distribution, Int, Tensor},
};
use common::{Reference, load_diffusers, relative_error};
use sd_clip::EmbeddingOverride;

/// The token-embedding row of `ids[batch, position]`, as an override vector.
fn table_row(
    model: &sd_clip::ClipTextModel,
    ids: &Tensor<2, Int>,
    batch: usize,
    position: usize,
) -> Tensor<1> {
    let id: i64 = ids
        .to_data()
        .iter::<i64>()
        .nth(batch * ids.dims()[1] + position)
        .expect("in range");
    let [_, hidden] = model.embeddings.token_embedding.weight.dims();
    model
        .embeddings
        .token_embedding
        .weight
        .val()
        .slice([id as usize..id as usize + 1, 0..hidden])
        .reshape([hidden])
}

#[test]
fn overriding_with_the_table_row_changes_nothing() {
    let device = Device::default();
    let (model, _) = load_diffusers("tiny-sd1", &device);
    let ids = Reference::open("tiny-sd1").input_ids(&device);
    let plain = model.forward(ids.clone(), &[]).expect("forward");
    let overrides: Vec<_> = [(1, 2), (3, 5), (5, 76)]
        .into_iter()
        .map(|(b, p)| EmbeddingOverride::new(b, p, table_row(&model, &ids, b, p)))
        .collect();
    let spliced = model.forward(ids, &overrides).expect("forward");
    // Same numbers through the same ops: identical.
    assert_eq!(relative_error(spliced.to_data(), plain.to_data()), 0.0);
}

#[test]
fn an_override_changes_its_position_and_later_ones_only() {
    let device = Device::default();
    let (model, _) = load_diffusers("tiny-sd1", &device);
    let ids = Reference::open("tiny-sd1").input_ids(&device);
    let plain = model.forward(ids.clone(), &[]).expect("forward");
    let vector = Tensor::<1>::random([32], Distribution::Normal(0.0, 1.0), &device);
    let spliced = model
        .forward(ids, &[EmbeddingOverride::new(1, 3, vector)])
        .expect("forward");
    let diff = (spliced - plain).abs().sum_dim(2).reshape([6, 77]);
    let diff: Vec<f32> = diff.to_data().iter::<f32>().collect();
    for (i, d) in diff.iter().enumerate() {
        let (b, p) = (i / 77, i % 77);
        // Causal attention: only sequence 1 from position 3 on can see the new vector.
        if b == 1 && p >= 3 {
            assert!(*d > 1e-4, "({b}, {p}) unchanged");
        } else {
            assert_eq!(*d, 0.0, "({b}, {p}) changed");
        }
    }
}

#[test]
fn bad_overrides_are_errors() {
    let device = Device::default();
    let (model, _) = load_diffusers("tiny-sd1", &device);
    let ids = Reference::open("tiny-sd1").input_ids(&device);
    let v = |n| Tensor::<1>::zeros([n], &device);
    for o in [
        EmbeddingOverride::new(6, 0, v(32)),
        EmbeddingOverride::new(0, 77, v(32)),
        EmbeddingOverride::new(0, 0, v(31)),
    ] {
        assert!(model.forward(ids.clone(), &[o]).is_err());
    }
    let too_long = Tensor::<2, Int>::zeros([1, 78], &device);
    assert!(model.forward(too_long, &[]).is_err());
}

#[test]
fn gradients_reach_the_override_vectors_and_not_the_frozen_weights() {
    let device = Device::default().autodiff();
    let (model, _) = load_diffusers("tiny-sd1", &device);
    let model = model.no_grad();
    let ids = Reference::open("tiny-sd1").input_ids(&device);

    // Two trainable vectors, as a textual-inversion embedding holds them.
    let vectors =
        Tensor::<2>::random([2, 32], Distribution::Normal(0.0, 0.1), &device).require_grad();
    let row = |i: usize| vectors.clone().slice([i..i + 1, 0..32]).reshape([32]);
    let overrides = [
        EmbeddingOverride::new(1, 1, row(0)),
        EmbeddingOverride::new(1, 2, row(1)),
    ];
    let out = model.forward(ids, &overrides).expect("forward");
    let grads = out.powf_scalar(2.0).mean().backward();

    let grad = vectors
        .grad(&grads)
        .expect("the override vectors get a gradient");
    let norms: Vec<f32> = grad
        .powf_scalar(2.0)
        .sum_dim(1)
        .to_data()
        .iter::<f32>()
        .collect();
    assert!(
        norms.iter().all(|&n| n > 0.0),
        "zero gradient rows: {norms:?}"
    );

    let table = model.embeddings.token_embedding.weight.val();
    assert!(!table.is_require_grad());
    assert!(
        table.grad(&grads).is_none(),
        "the embedding table must get no gradient"
    );
    let q = model.encoder.layers[0].self_attn.q_proj.weight.val();
    assert!(
        q.grad(&grads).is_none(),
        "frozen layers must get no gradient"
    );
    assert!(model.final_layer_norm.gamma.val().grad(&grads).is_none());
}
