//! Times one piece of Stable Diffusion work at real sizes and prints one JSON line, so a script
//! can set it beside the same work in PyTorch (`tools/bench_reference.py`,
//! `tools/bench_compare.py`).
//!
//! ```text
//! sdti bench --model sd15.safetensors --work unet --batch 2 --reps 3
//! sdti-wgpu bench --random-weights sd15 --device wgpu \
//!     --work ti-step
//! ```
//!
//! `--random-weights sd15` (or `sd21`) builds the real networks in memory with random weights
//! instead of loading a checkpoint: the same shapes and work, no 2 GB file to carry to a GPU
//! machine (`tools/gpu_check.sh`).
//!
//! Works (each in its own process, so the peak resident memory is that work's alone):
//! - `load`: checkpoint → ready model (`times_s` are repeated loads);
//! - `clip`: text encoder on `batch` × 77 tokens;
//! - `unet`: one UNet evaluation on a `batch` × 4 × H/8 × W/8 latent (batch 2 = one CFG step);
//! - `unet-attention`: the same evaluation with every part timed alone (resnets, self- and
//!   cross-attention, feed-forward, the transformers' norms and projections, samplers), adding a
//!   `parts_s` object of median seconds per part;
//! - `vae-decode`: latent → `batch` × 3 × H × W pixels; `vae-encode`: pixels → latent mean;
//! - `ti-step`: one textual-inversion step (prompt with one embedding vector, UNet forward,
//!   backward to the vector, AdamW) at H × W;
//! - `txt2img`: the whole pipeline (CLIP, `steps` Euler steps with CFG, VAE decode).
//!
//! Output: `{"work", "width", "height", "batch", "load_s", "times_s": [...],
//! "peak_rss_mib", "simd", "conv3x3"}` (peak resident memory from `/proc/self/status`
//! `VmHWM`, the process's high-water mark, model included; `simd` the instruction set the
//! CPU kernels ran on, `avx512`, `avx2`, `neon` or `scalar`; `conv3x3` the 3×3 convolution
//! algorithm, `winograd` or `direct`). On a GPU (wgpu, CUDA) the line adds
//! `gpu_reserved_mib`, what burn's allocator holds on the device after the timed runs: its
//! pools keep their pages for reuse, so this is the high-water mark of the device memory
//! the work needed (weights included), and `gpu_in_use_mib`, what live tensors use then.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use crate::cli::{model_or_bundled, training_device};
use anyhow::{Context, bail};
use clap::Parser;
use sd_kernels::{Convolution3x3, conv2d, group_norm};
use sd_textual_inversion::sd_core::burn::tensor::{
    Device, Distribution, Int, Tensor, TensorData, activation::silu,
};
use sd_textual_inversion::sd_core::conditioning::{EmbeddingLookup, TextualInversionVectors};
use sd_textual_inversion::sd_core::model::Precision;
use sd_textual_inversion::sd_core::sd_unet::embeddings::Timesteps;
use sd_textual_inversion::sd_core::sd_unet::transformer_2d::{Projection, Transformer2DModel};
use sd_textual_inversion::sd_core::sd_unet::unet_2d_condition::UNet2DConditionModel;
use sd_textual_inversion::sd_core::{
    DeviceChoice, GenerationRequest, ModelArchitecture, StableDiffusion,
};
use sd_textual_inversion::train::{AdamW, AdamWConfig, StepBatch, freeze, loss_and_grad_scaled};

/// The prompt of `clip` and `txt2img` (the negative prompt is empty).
const PROMPT: &str = "a photograph of an astronaut riding a horse";

/// Time one piece of Stable Diffusion work; prints one JSON line.
#[derive(Parser)]
pub struct Args {
    /// Checkpoint (single file or diffusers folder; default: the bundled tiny model).
    #[arg(long, conflicts_with = "random_weights")]
    model: Option<PathBuf>,
    /// Build this standard architecture with random weights in memory instead of loading a
    /// checkpoint: sd15 or sd21.
    #[arg(long, value_enum)]
    random_weights: Option<RandomWeights>,
    /// With `--random-weights`: cut CLIP's vocabulary (and the tokenizer) to this many rows.
    /// For wgpu devices whose largest storage-buffer binding is smaller than CLIP's
    /// 49 408 × 768 f32 token table (152 MB), such as Mesa's lavapipe (128 MiB): 40000 fits.
    #[arg(long, requires = "random_weights")]
    vocab_rows: Option<usize>,
    /// What to time: load, clip, unet, unet-attention, vae-decode, vae-encode, ti-step,
    /// txt2img.
    #[arg(long)]
    work: String,
    /// Picture width in pixels (the latent is width / 8).
    #[arg(long, default_value_t = 512)]
    width: usize,
    /// Picture height in pixels.
    #[arg(long, default_value_t = 512)]
    height: usize,
    /// Batch: prompts for clip, latents for unet/vae, pictures for ti-step and txt2img.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Sampling steps of txt2img.
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Timed repetitions, after one untimed warm-up run at 64×64 pixels (none for load and
    /// txt2img).
    #[arg(long, default_value_t = 3)]
    reps: usize,
    /// Compute device: cpu, wgpu or cuda.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// What the networks compute in: f32, f16 or bf16 (the embedding of ti-step stays f32).
    #[arg(long, default_value = "f32", value_parser = crate::cli::parse_precision)]
    precision: Precision,
    /// ti-step only: burn's balanced gradient checkpointing (memory-bound operations are
    /// recomputed in the backward pass instead of kept).
    #[arg(long)]
    gradient_checkpointing: bool,
    /// How the CPU kernels compute the 3×3 convolutions: winograd (the default) or direct
    /// (burn's im2col convolution), for comparisons.
    #[arg(long, value_enum, default_value_t = Conv3x3::Winograd)]
    conv3x3: Conv3x3,
}

/// `--random-weights`' values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum RandomWeights {
    /// Stable Diffusion 1.5.
    Sd15,
    /// Stable Diffusion 2.1 (512, ε-prediction).
    Sd21,
}

impl RandomWeights {
    fn architecture(self) -> ModelArchitecture {
        match self {
            Self::Sd15 => ModelArchitecture::sd15(),
            Self::Sd21 => ModelArchitecture::sd21(),
        }
    }
}

/// `--conv3x3`'s values.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Conv3x3 {
    /// Winograd's F(4×4, 3×3).
    Winograd,
    /// burn's direct convolution.
    Direct,
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    sd_kernels::set_convolution_3x3(match args.conv3x3 {
        Conv3x3::Winograd => Convolution3x3::Winograd,
        Conv3x3::Direct => Convolution3x3::Direct,
    });
    if !args.width.is_multiple_of(8)
        || !args.height.is_multiple_of(8)
        || args.width == 0
        || args.height == 0
    {
        bail!("--width and --height must be positive multiples of 8");
    }
    if args.batch == 0 || args.reps == 0 {
        bail!("--batch and --reps must be at least 1");
    }
    if args.gradient_checkpointing && args.work != "ti-step" {
        bail!("--gradient-checkpointing applies to --work ti-step only");
    }
    // Training builds a graph: the model must live on the autodiff device.
    let device = if args.work == "ti-step" {
        training_device(&args.device, args.gradient_checkpointing)?
    } else {
        args.device.parse::<DeviceChoice>()?.device()?
    };
    let load = || -> anyhow::Result<StableDiffusion> {
        Ok(match args.random_weights {
            Some(preset) => {
                let mut architecture = preset.architecture();
                if let Some(rows) = args.vocab_rows {
                    architecture.text_encoder.vocab_size = rows;
                }
                StableDiffusion::with_random_weights(architecture, &device)?
            }
            None => {
                let path = model_or_bundled(args.model.clone())?;
                StableDiffusion::load(&path, &device)
                    .with_context(|| format!("loading {}", path.display()))?
            }
        })
    };
    let start = Instant::now();
    let model = load()?.with_precision(args.precision)?;
    let _ = device.sync();
    let load_s = start.elapsed().as_secs_f64();

    let b = args.batch;
    let model = if args.work == "ti-step" {
        freeze(model)
    } else {
        model
    };
    let mut extra = serde_json::Map::new();
    let times = match args.work.as_str() {
        "load" => {
            drop(model);
            let mut times = vec![load_s];
            for _ in 1..args.reps {
                let start = Instant::now();
                let m = load()?;
                let _ = device.sync();
                times.push(start.elapsed().as_secs_f64());
                drop(m);
            }
            times
        }
        work => {
            // One untimed run at 64×64 pixels (CLIP: the same shape) first, as the PyTorch
            // script does, so neither side's one-off start-up costs land in the timings.
            if work != "txt2img" {
                let mut warm = make_work(work, &model, b, 64, 64, args.steps, &device)?;
                warm(&mut BTreeMap::new())?;
                extra.insert("warmup".into(), "one untimed run at 64x64".into());
            }
            let mut run = make_work(
                work,
                &model,
                b,
                args.height,
                args.width,
                args.steps,
                &device,
            )?;
            let mut parts: BTreeMap<&'static str, Vec<f64>> = BTreeMap::new();
            let mut times = Vec::with_capacity(args.reps);
            for _ in 0..args.reps {
                let start = Instant::now();
                run(&mut parts)?;
                let _ = device.sync();
                times.push(start.elapsed().as_secs_f64());
            }
            if !parts.is_empty() {
                let medians: serde_json::Map<String, serde_json::Value> = parts
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), median(v).into()))
                    .collect();
                extra.insert("parts_s".into(), medians.into());
            }
            times
        }
    };
    let mut line = serde_json::json!({
        "work": args.work, "width": args.width, "height": args.height, "batch": b,
        "steps": args.steps, "device": args.device, "impl": "burn",
        "precision": args.precision.to_string(),
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "load_s": load_s, "times_s": times, "peak_rss_mib": peak_rss_mib(),
        "simd": sd_kernels::simd_level().name(),
        "conv3x3": format!("{:?}", args.conv3x3).to_lowercase(),
    });
    if args.gradient_checkpointing {
        extra.insert("gradient_checkpointing".into(), true.into());
    }
    if let Some(preset) = args.random_weights {
        extra.insert(
            "random_weights".into(),
            format!("{preset:?}").to_lowercase().into(),
        );
    }
    if let Some(rows) = args.vocab_rows {
        extra.insert("vocab_rows".into(), rows.into());
    }
    // The CPU backend reports no pools; its memory is `peak_rss_mib`.
    if let Some(usage) = device.memory_pool_usage().filter(|_| args.device != "cpu") {
        let mib = |bytes: u64| bytes as f64 / (1024.0 * 1024.0);
        extra.insert("gpu_reserved_mib".into(), mib(usage.bytes_reserved).into());
        extra.insert("gpu_in_use_mib".into(), mib(usage.bytes_in_use).into());
    }
    if let Some(obj) = line.as_object_mut() {
        obj.extend(extra);
    }
    println!("{line}");
    Ok(())
}

/// Per-part times of one run (`unet-attention` only), appended to.
type Parts = BTreeMap<&'static str, Vec<f64>>;

/// One run of a work per call.
type Work<'a> = Box<dyn FnMut(&mut Parts) -> anyhow::Result<()> + 'a>;

/// The work `work` at `height × width` pixels, ready to run once per call.
fn make_work<'a>(
    work: &str,
    model: &'a StableDiffusion,
    b: usize,
    height: usize,
    width: usize,
    steps: usize,
    device: &'a Device,
) -> anyhow::Result<Work<'a>> {
    let (lh, lw) = (height / 8, width / 8);
    Ok(match work {
        "clip" => {
            let mut ids = Vec::with_capacity(b * 77);
            for i in 0..b {
                let text = if i % 2 == 0 { PROMPT } else { "" };
                ids.extend(
                    model
                        .tokenizer
                        .encode_padded(text, 77)?
                        .iter()
                        .map(|&t| t as i64),
                );
            }
            let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, [b, 77]), device);
            Box::new(move |_| {
                let out = model.text_encoder.forward(ids.clone(), &[])?;
                let _ = out.into_data();
                Ok(())
            })
        }
        "unet" => {
            let (x, t, ctx) = unet_inputs(model, b, lh, lw, device);
            Box::new(move |_| {
                let out = model.unet.forward(x.clone(), t.clone(), ctx.clone())?;
                let _ = out.into_data();
                Ok(())
            })
        }
        "unet-attention" => {
            let (x, t, ctx) = unet_inputs(model, b, lh, lw, device);
            Box::new(move |parts| {
                let mut timer = PartTimer::new(device);
                let out = unet_by_parts(&model.unet, x.clone(), t.clone(), ctx.clone(), &mut timer);
                let _ = out.into_data();
                for (k, v) in timer.parts {
                    parts.entry(k).or_default().push(v);
                }
                Ok(())
            })
        }
        "vae-decode" => {
            let z = Tensor::<4>::random([b, 4, lh, lw], Distribution::Normal(0.0, 1.0), device);
            Box::new(move |_| {
                let _ = model.vae.decode(z.clone()).into_data();
                Ok(())
            })
        }
        "vae-encode" => {
            let px = Tensor::<4>::random(
                [b, 3, height, width],
                Distribution::Uniform(-1.0, 1.0),
                device,
            );
            Box::new(move |_| {
                let _ = model.vae.encode(px.clone()).mean.into_data();
                Ok(())
            })
        }
        "ti-step" => ti_step(model, b, lh, lw, device),
        "txt2img" => {
            let params = GenerationRequest {
                prompt: PROMPT.into(),
                steps,
                sampler: "Euler".into(),
                cfg_scale: 7.0,
                seed: 1,
                width: width as u32,
                height: height as u32,
                batch_size: b,
                ..GenerationRequest::default()
            };
            let lookup = EmbeddingLookup::new();
            Box::new(move |_| {
                let _ = model.txt2img(&params, &lookup, &mut |_| {
                    std::ops::ControlFlow::Continue(())
                })?;
                Ok(())
            })
        }
        other => bail!(
            "unknown --work {other:?}: load, clip, unet, unet-attention, vae-decode, \
             vae-encode, ti-step, txt2img"
        ),
    })
}

/// One textual-inversion step per call: the trainer's own `loss_and_grad_scaled` (prompt → CLIP
/// with the vector spliced in → noised latent → UNet → MSE → backward to the vector) and its
/// AdamW update. `model` must be frozen and on an autodiff device.
fn ti_step<'a>(
    model: &'a StableDiffusion,
    b: usize,
    lh: usize,
    lw: usize,
    device: &Device,
) -> Work<'a> {
    let dim = model.architecture().text_encoder.hidden_size;
    let mut vectors: Vec<f32> = (0..dim).map(|i| ((i as f32) * 0.37).sin() * 0.01).collect();
    let mut optimizer = AdamW::new(AdamWConfig::default(), dim);
    let channels = model.architecture().unet.out_channels;
    let batch = StepBatch {
        texts: vec!["a photo of benchemb".to_string(); b],
        latents: Tensor::random(
            [b, channels, lh, lw],
            Distribution::Normal(0.0, 1.0),
            device,
        ),
        noise: Tensor::random(
            [b, channels, lh, lw],
            Distribution::Normal(0.0, 1.0),
            device,
        ),
        timesteps: vec![500; b],
        weight: None,
    };
    // In f16 the trainer scales the loss (GradScaler's starting 2¹⁶): the same work.
    let loss_scale = match model.precision() {
        Precision::F16 => 65536.0,
        _ => 1.0,
    };
    Box::new(move |_| {
        let mut lookup = EmbeddingLookup::new();
        let id = lookup.register(
            TextualInversionVectors::new("benchemb", vectors.clone(), 1, dim)?,
            &model.tokenizer,
        )?;
        let out = loss_and_grad_scaled(model, &lookup, id, &vectors, 1, &batch, loss_scale)?;
        optimizer.step(&mut vectors, &out.grad, 0.005);
        Ok(())
    })
}

/// A random latent, timestep 500 per item and a random 77-token context.
fn unet_inputs(
    model: &StableDiffusion,
    b: usize,
    lh: usize,
    lw: usize,
    device: &Device,
) -> (Tensor<4>, Tensor<1>, Tensor<3>) {
    let channels = model.architecture().unet.in_channels;
    let ctx_dim = model.architecture().unet.cross_attention_dim;
    let x = Tensor::<4>::random(
        [b, channels, lh, lw],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    let t = Tensor::<1>::from_data(TensorData::new(vec![500.0f32; b], [b]), device);
    let ctx = Tensor::<3>::random([b, 77, ctx_dim], Distribution::Normal(0.0, 1.0), device);
    (x, t, ctx)
}

/// Adds up the time of each kind of UNet part; the device is synced around every part so
/// the time lands where the work is.
struct PartTimer<'a> {
    device: &'a Device,
    parts: BTreeMap<&'static str, f64>,
}

impl<'a> PartTimer<'a> {
    fn new(device: &'a Device) -> Self {
        Self {
            device,
            parts: BTreeMap::new(),
        }
    }

    fn time<T>(&mut self, part: &'static str, f: impl FnOnce() -> T) -> T {
        let _ = self.device.sync();
        let start = Instant::now();
        let out = f();
        let _ = self.device.sync();
        *self.parts.entry(part).or_default() += start.elapsed().as_secs_f64();
        out
    }
}

/// `UNet2DConditionModel::forward` taken apart, every piece timed alone (the same calls in
/// the same order as `forward_unchecked` and the blocks' `forward`, through the same
/// sd-kernels functions: the GroupNorm (+ SiLU) kernel, not burn's `GroupNorm`).
fn unet_by_parts(
    unet: &UNet2DConditionModel,
    sample: Tensor<4>,
    timesteps: Tensor<1>,
    context: Tensor<3>,
    timer: &mut PartTimer<'_>,
) -> Tensor<4> {
    let temb = timer.time("time_embedding", || {
        let proj = Timesteps {
            num_channels: unet.timestep_channels,
            flip_sin_to_cos: unet.flip_sin_to_cos,
            freq_shift: unet.freq_shift,
        };
        silu(unet.time_embedding.forward(proj.forward(timesteps)))
    });
    let mut h = timer.time("conv_in_out", || conv2d(&unet.conv_in, sample));
    let mut skips = vec![h.clone()];
    for block in &unet.down_blocks {
        for (j, resnet) in block.resnets.iter().enumerate() {
            h = timer.time("resnets", || resnet.forward(h, temb.clone()));
            if let Some(attention) = block.attentions.get(j) {
                h = transformer_by_parts(attention, h, &context, timer);
            }
            skips.push(h.clone());
        }
        for down in &block.downsamplers {
            h = timer.time("down_upsamplers", || down.forward(h));
            skips.push(h.clone());
        }
    }
    let mid = &unet.mid_block;
    let mut resnets = mid.resnets.iter();
    if let Some(first) = resnets.next() {
        h = timer.time("resnets", || first.forward(h, temb.clone()));
    }
    for (attention, resnet) in mid.attentions.iter().zip(resnets) {
        h = transformer_by_parts(attention, h, &context, timer);
        h = timer.time("resnets", || resnet.forward(h, temb.clone()));
    }
    for block in &unet.up_blocks {
        let remaining = skips.len().saturating_sub(block.resnets.len());
        let size = remaining
            .checked_sub(1)
            .and_then(|i| skips.get(i))
            .map(|s| [s.dims()[2], s.dims()[3]]);
        for (j, resnet) in block.resnets.iter().enumerate() {
            if let Some(skip) = skips.pop() {
                h = timer.time("concat", || Tensor::cat(vec![h, skip], 1));
            }
            h = timer.time("resnets", || resnet.forward(h, temb.clone()));
            if let Some(attention) = block.attentions.get(j) {
                h = transformer_by_parts(attention, h, &context, timer);
            }
        }
        for up in &block.upsamplers {
            let [_, _, height, width] = h.dims();
            let size = size.unwrap_or([2 * height, 2 * width]);
            h = timer.time("down_upsamplers", || up.forward(h, size));
        }
    }
    timer.time("conv_in_out", || {
        conv2d(&unet.conv_out, group_norm(&unet.conv_norm_out, h, true))
    })
}

/// `Transformer2DModel::forward` with its self-attention, cross-attention, feed-forward and
/// the rest (group norm, projections, layer norms, residuals, layout changes) timed apart.
fn transformer_by_parts(
    t: &Transformer2DModel,
    x: Tensor<4>,
    context: &Tensor<3>,
    timer: &mut PartTimer<'_>,
) -> Tensor<4> {
    let [batch, channels, height, width] = x.dims();
    let tokens = height * width;
    let to_tokens = |t: Tensor<4>| t.reshape([batch, channels, tokens]).swap_dims(1, 2);
    let to_image = |t: Tensor<3>| t.swap_dims(1, 2).reshape([batch, channels, height, width]);
    let mut h = timer.time("transformer_norm_proj", || {
        let normed = group_norm(&t.norm, x.clone(), false);
        match &t.proj_in {
            Projection::Conv(conv) => to_tokens(conv2d(conv, normed)),
            Projection::Linear(linear) => linear.forward(to_tokens(normed)),
        }
    });
    for block in &t.transformer_blocks {
        let n1 = timer.time("transformer_norm_proj", || block.norm1.forward(h.clone()));
        let self_ctx = block.only_cross_attention.then(|| context.clone());
        h = timer.time("self_attention", || block.attn1.forward(n1, self_ctx) + h);
        let n2 = timer.time("transformer_norm_proj", || block.norm2.forward(h.clone()));
        h = timer.time("cross_attention", || {
            block.attn2.forward(n2, Some(context.clone())) + h
        });
        let n3 = timer.time("transformer_norm_proj", || block.norm3.forward(h.clone()));
        h = timer.time("feed_forward", || block.ff.forward(n3) + h);
    }
    timer.time("transformer_norm_proj", || {
        let out = match &t.proj_out {
            Projection::Conv(conv) => conv2d(conv, to_image(h)),
            Projection::Linear(linear) => to_image(linear.forward(h)),
        };
        out + x
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The process's peak resident set (`VmHWM`), in MiB; 0 where `/proc` is missing.
fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}
