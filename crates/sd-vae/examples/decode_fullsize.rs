//! Loads a full-size SD 1.x VAE from an LDM single file and decodes one latent on the CPU,
//! printing the load and decode times as one JSON line.
//!
//! ```text
//! cargo run --release -p sd-vae --example decode_fullsize -- $SD_FULLSIZE_DIR/sd15-random.safetensors
//! /usr/bin/time -v target/release/examples/decode_fullsize $SD_FULLSIZE_DIR/sd15-random.safetensors
//! ```
//!
//! The optional second argument is either the latent side (default 64, i.e. 512x512 pixels,
//! from a seeded random latent) or a `.safetensors` file holding `latent` and the `image`
//! diffusers decoded from it; then the relative error against that image is printed too.

use std::time::Instant;

use burn::store::{ModuleStore, SafetensorsStore, bridge};
use burn::tensor::{Device, Distribution, Tensor};
use sd_vae::{AutoencoderKl, AutoencoderKlConfig, WeightFormat};

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> AnyResult<()> {
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or(
        "usage: decode_fullsize CHECKPOINT.safetensors [LATENT_SIDE | REFERENCE.safetensors]",
    )?;
    let second = args.next();
    let device = Device::default();

    let start = Instant::now();
    let mut store = SafetensorsStore::from_file(&path);
    let vae = AutoencoderKl::load(
        &AutoencoderKlConfig::sd15(),
        &mut store,
        WeightFormat::Ldm,
        &device,
    )?;
    let load_s = start.elapsed().as_secs_f64();

    let (latent, reference) = match second.as_deref() {
        Some(file) if file.ends_with(".safetensors") => {
            let mut refs = SafetensorsStore::from_file(file);
            let latent = read(&mut refs, "latent", &device)?;
            (latent, Some(read(&mut refs, "image", &device)?))
        }
        side => {
            let side: usize = side.map_or(Ok(64), str::parse)?;
            device.seed(0);
            let shape = [1, 4, side, side];
            (
                Tensor::random(shape, Distribution::Normal(0.0, 1.0), &device),
                None,
            )
        }
    };

    let start = Instant::now();
    let image = vae.decode(latent);
    let dims = image.dims();
    // Reading a value back forces the computation to finish before the clock stops.
    let mean = image.clone().mean().into_scalar::<f32>();
    let decode_s = start.elapsed().as_secs_f64();

    let relative_error = reference.map(|expected| {
        let scale = expected.clone().abs().max().into_scalar::<f32>();
        (image - expected).abs().max().into_scalar::<f32>() / scale
    });
    println!(
        "{{\"work\": \"vae-decode\", \"params\": {}, \"output\": {dims:?}, \"load_s\": {load_s:.3}, \"decode_s\": {decode_s:.3}, \"mean\": {mean}, \"relative_error\": {}}}",
        vae.num_parameters(),
        relative_error.map_or("null".to_owned(), |e| format!("{e:e}")),
    );
    Ok(())
}

fn read(store: &mut SafetensorsStore, key: &str, device: &Device) -> AnyResult<Tensor<4>> {
    let tensor = store
        .get_tensor(key)?
        .ok_or_else(|| format!("no tensor `{key}` in the reference file"))?;
    Ok(Tensor::from_data(bridge::to_data(tensor)?, device))
}
