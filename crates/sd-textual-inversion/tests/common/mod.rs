//! Helpers shared by the trainer tests: an embedding lookup with one vector, and the
//! denoising loss of a prompt at fixed timesteps and noise.

use burn::tensor::{Tensor, TensorData};
use sd_textual_inversion::sd_core::StableDiffusion;
use sd_textual_inversion::sd_core::conditioning::{EmbeddingLookup, TextualInversionVectors};
use sd_textual_inversion::sd_core::noise::TorchCpuGenerator;
use sd_textual_inversion::train::{StepBatch, loss_and_grad};

/// A lookup that knows `name` as the one-vector embedding `vectors`.
pub fn lookup_with(model: &StableDiffusion, name: &str, vectors: &[f32]) -> EmbeddingLookup {
    let mut lookup = EmbeddingLookup::new();
    lookup
        .register(
            TextualInversionVectors::new(name, vectors.to_vec(), 1, vectors.len())
                .expect("vectors"),
            &model.tokenizer,
        )
        .expect("register");
    lookup
}

/// The mean denoising loss of `prompt` (which names `name`) with `vectors` as `name`, over
/// `latents` at each of `timesteps`, with fixed noise (seed 99): how well the embedding
/// explains the pictures, free of the training's random timesteps.
pub fn eval_loss(
    model: &StableDiffusion,
    latents: &[Tensor<4>],
    prompt: &str,
    name: &str,
    vectors: &[f32],
    timesteps: &[usize],
) -> f32 {
    let lookup = lookup_with(model, name, vectors);
    let id = lookup.id_of(name).expect("registered");
    let mut noise = TorchCpuGenerator::new(99);
    let mut total = 0.0;
    let mut n = 0.0;
    for latent in latents {
        for &t in timesteps {
            let dims = latent.dims();
            let eps = Tensor::<4>::from_data(
                TensorData::new(noise.randn(dims.iter().product()), dims),
                model.device(),
            );
            let batch = StepBatch {
                texts: vec![prompt.to_owned()],
                latents: Tensor::from_data(latent.to_data(), model.device()),
                noise: eps,
                timesteps: vec![t],
                weight: None,
            };
            total += loss_and_grad(model, &lookup, id, vectors, 1, &batch)
                .expect("loss")
                .loss;
            n += 1.0;
        }
    }
    total / n
}
