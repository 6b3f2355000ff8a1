//! Loads a full-size UNet and times one denoising step at a 64×64 latent (512×512 pixels).
//!
//! ```sh
//! cargo run --release -p sd-unet --example unet_step -- $SD_FULLSIZE_DIR/sd15-random.safetensors
//! cargo run --release -p sd-unet --example unet_step -- $SD_FULLSIZE_DIR/sd15-random  # diffusers folder
//! ```
//!
//! Arguments: `PATH [BATCH...]` (default batches: 1 2). A single file is read as SD 1.5 (its
//! input channels from `conv_in`); a folder with its `unet/config.json`. Prints one JSON line
//! per batch size. Wrap it in `/usr/bin/time -v` for the peak RSS.

use std::path::Path;
use std::time::Instant;

use burn::store::SafetensorsStore;
use burn::tensor::{Device, Distribution, Tensor};
use sd_unet::{UNet2DConditionModel, UNetConfig, UNetError, WeightFormat};

fn main() -> Result<(), UNetError> {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: unet_step PATH [BATCH...]");
        std::process::exit(2);
    };
    let batches: Vec<usize> = args.filter_map(|a| a.parse().ok()).collect();
    let batches = if batches.is_empty() {
        vec![1, 2]
    } else {
        batches
    };
    let device = Device::default();

    let start = Instant::now();
    let path = Path::new(&path);
    let (config, mut store, format) = if path.is_dir() {
        let config = UNetConfig::from_json_file(path.join("unet/config.json"))?;
        let weights = path.join("unet/diffusion_pytorch_model.safetensors");
        (
            config,
            SafetensorsStore::from_file(weights),
            WeightFormat::Diffusers,
        )
    } else {
        let mut store = SafetensorsStore::from_file(path);
        let mut config = UNetConfig::sd15();
        if let Some(channels) = sd_unet::loader::conv_in_channels(&mut store, WeightFormat::Ldm)? {
            config.in_channels = channels;
        }
        (config, store, WeightFormat::Ldm)
    };
    let unet = UNet2DConditionModel::load(&config, &mut store, format, &device)?;
    drop(store);
    let load_s = start.elapsed().as_secs_f64();

    let normal = Distribution::Normal(0.0, 1.0);
    for batch in batches {
        let sample = Tensor::<4>::random([batch, config.in_channels, 64, 64], normal, &device);
        let context = Tensor::<3>::random([batch, 77, config.cross_attention_dim], normal, &device);
        let timesteps = Tensor::<1>::from_data([500.5f32; 1].repeat(batch).as_slice(), &device);
        let start = Instant::now();
        let out = unet.forward(sample, timesteps, context)?;
        // Reading the result back makes sure the work is done, on any backend.
        let mean: f32 = out.clone().mean().into_scalar();
        let step_s = start.elapsed().as_secs_f64();
        println!(
            "{{\"work\": \"unet\", \"batch\": {batch}, \"latent\": [64, 64], \"load_s\": {load_s:.2}, \"step_s\": {step_s:.2}, \"out_mean\": {mean:e}, \"finite\": {}}}",
            mean.is_finite()
        );
    }
    Ok(())
}
