//! Throughput of the two operations that dominate Stable Diffusion, on one backend.
//!
//! ```text
//! cargo run --release --example ops_bench -- --device cpu
//! cargo run --release --example ops_bench --features ndarray -- --device ndarray
//! ```
//!
//! Times, at SD 1.5 shapes: a 3x3 convolution (320 channels, 64x64 latent, batch 2), the same
//! convolution's backward pass, and the attention-projection matmul (4096x320 by 320x320,
//! batched, also folded to 2-D and with a broadcast weight) plus a square 1024 matmul, and the
//! top-level self-attention of a CFG step (2 × 8 heads over 4096 tokens) through the fused op
//! and as per-head matmul + softmax. Prints one JSON line per operation with the median time
//! and GFLOP/s. `tools/bench_ops.py` runs the same shapes in PyTorch for the ratio.

use std::time::Instant;

use clap::Parser;
use sd_kernels::{Convolution3x3, set_convolution_3x3};
use sd_textual_inversion::sd_core::burn::module::Module;
use sd_textual_inversion::sd_core::burn::nn::conv::Conv2dConfig;
use sd_textual_inversion::sd_core::burn::nn::{LinearConfig, PaddingConfig2d};
use sd_textual_inversion::sd_core::{
    DeviceChoice,
    burn::tensor::{
        Device, Distribution, Tensor, activation::softmax, module::conv2d, ops::ConvOptions,
    },
    sd_unet::attention::scaled_dot_product,
};

#[derive(Parser)]
#[command(about = "Measure conv2d and matmul GFLOP/s on a burn backend")]
struct Args {
    /// Backend: cpu (flex), wgpu, cuda, or ndarray (with `--features ndarray`, for comparison).
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Timed repetitions per operation (after one warm-up).
    #[arg(long, default_value_t = 5)]
    reps: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let device = pick_device(&args.device)?;
    let conv = |b: usize, c: usize, hw: usize, device: &Device| {
        let x = Tensor::<4>::random([b, c, hw, hw], Distribution::Default, device);
        let w = Tensor::<4>::random([c, c, 3, 3], Distribution::Default, device);
        (x, w, 2.0 * (b * c * c * 9 * hw * hw) as f64)
    };

    let (x, w, flops) = conv(2, 320, 64, &device);
    report(&args, &device, "conv2d_3x3_b2_c320_64x64", flops, || {
        let y = conv2d(
            x.clone(),
            w.clone(),
            None,
            ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
        );
        let _ = y.into_data();
    });

    let grad_device = device.clone().autodiff();
    let (x, w, flops) = conv(1, 320, 32, &grad_device);
    let (x, w) = (x.require_grad(), w.require_grad());
    // Backward computes the input and the weight gradients: twice the forward's work.
    report(
        &args,
        &device,
        "conv2d_3x3_backward_b1_c320_32x32",
        2.0 * flops,
        || {
            let y = conv2d(
                x.clone(),
                w.clone(),
                None,
                ConvOptions::new([1, 1], [1, 1], [1, 1], 1),
            );
            let grads = y.sum().backward();
            let _ = x.grad(&grads).map(|g| g.into_data());
        },
    );

    // The networks' 3×3 convolutions through `sd_kernels::conv2d`, by each algorithm: the
    // UNet's levels in a CFG step, the VAE decoder's 512 and 256 channels.
    for (b, c, hw) in [
        (2, 320, 64),
        (2, 640, 32),
        (2, 1280, 16),
        (1, 512, 64),
        (1, 256, 256),
    ] {
        let (x, _, flops) = conv(b, c, hw, &device);
        let layer = Conv2dConfig::new([c, c], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&device);
        for algorithm in [Convolution3x3::Direct, Convolution3x3::Winograd] {
            set_convolution_3x3(algorithm);
            let name = format!("sd_conv3x3_{algorithm:?}_b{b}_c{c}_{hw}x{hw}").to_lowercase();
            report(&args, &device, &name, flops, || {
                let _ = sd_kernels::conv2d(&layer, x.clone()).into_data();
            });
        }
    }
    set_convolution_3x3(Convolution3x3::default());

    // The same in training: frozen weights, forward and input gradient, batch 1.
    let grad_device = device.clone().autodiff();
    for (c, hw) in [(320, 64), (640, 32)] {
        let (x, _, flops) = conv(1, c, hw, &grad_device);
        let x = x.require_grad();
        let layer = Conv2dConfig::new([c, c], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(&grad_device)
            .no_grad();
        for algorithm in [Convolution3x3::Direct, Convolution3x3::Winograd] {
            set_convolution_3x3(algorithm);
            let name =
                format!("sd_conv3x3_frozen_fwd_bwd_{algorithm:?}_b1_c{c}_{hw}x{hw}").to_lowercase();
            report(&args, &device, &name, 2.0 * flops, || {
                let y = sd_kernels::conv2d(&layer, x.clone());
                let grads = y.sum().backward();
                let _ = x.grad(&grads).map(|g| g.into_data());
            });
        }
    }
    set_convolution_3x3(Convolution3x3::default());

    // The UNet's linear layers through `sd_kernels::linear` (burn's `Linear` on other
    // backends): the attention projections and the feed-forward's two products.
    for (tokens, inner, outer) in [(8192, 320, 320), (8192, 320, 2560), (8192, 1280, 320)] {
        let layer = LinearConfig::new(inner, outer).init(&device);
        let x = Tensor::<3>::random([1, tokens, inner], Distribution::Default, &device);
        let flops = 2.0 * (tokens * inner * outer) as f64;
        let name = format!("sd_linear_{tokens}x{inner}x{outer}");
        report(&args, &device, &name, flops, || {
            let _ = sd_kernels::linear(&layer, x.clone()).into_data();
        });
        report(&args, &device, &format!("burn_{name}"), flops, || {
            let _ = layer.forward(x.clone()).into_data();
        });
    }

    time_matmul(
        &args,
        &device,
        "matmul_b2_4096x320x320",
        [2, 4096, 320],
        [2, 320, 320],
    );

    // SD 1.5's top-level self-attention in a CFG step: batch 2, 8 heads, 4096 tokens, 40 dims.
    let qkv = || Tensor::<4>::random([2, 8, 4096, 40], Distribution::Default, &device);
    let (q, k, v) = (qkv(), qkv(), qkv());
    let attention_flops = 2.0 * 2.0 * 16.0 * 4096.0 * 4096.0 * 40.0;
    report(
        &args,
        &device,
        "attention_fused_b2h8_4096x40",
        attention_flops,
        || {
            let out = scaled_dot_product(q.clone(), k.clone(), v.clone(), false);
            let _ = out.into_data();
        },
    );
    report(
        &args,
        &device,
        "attention_matmul_softmax_per_head_b2h8_4096x40",
        attention_flops,
        || {
            let heads = (0..16)
                .map(|i| {
                    let head = |t: &Tensor<4>| t.clone().reshape([16, 4096, 40]).narrow(0, i, 1);
                    let scores = head(&q).matmul(head(&k).swap_dims(1, 2)) * (1.0 / 40f64.sqrt());
                    softmax(scores, 2).matmul(head(&v))
                })
                .collect();
            let _ = Tensor::cat(heads, 0).into_data();
        },
    );

    // The same product with the batch folded into the rows, as a 2-D matmul.
    time_matmul(
        &args,
        &device,
        "matmul_8192x320x320_2d",
        [8192, 320],
        [320, 320],
    );
    // What burn's `Linear` does with a `[batch, tokens, in]` input: a broadcast weight.
    time_matmul(
        &args,
        &device,
        "matmul_b2_4096x320x320_broadcast_rhs",
        [2, 4096, 320],
        [1, 320, 320],
    );
    time_matmul(&args, &device, "matmul_1024", [1024, 1024], [1024, 1024]);
    Ok(())
}

/// Times `a.matmul(b)` for random `a` and `b` of the given shapes (`b` may broadcast over
/// `a`'s batch dimensions): 2·M·K·N FLOP per output matrix.
fn time_matmul<const D: usize>(
    args: &Args,
    device: &Device,
    name: &str,
    a_dims: [usize; D],
    b_dims: [usize; D],
) {
    let a = Tensor::<D>::random(a_dims, Distribution::Default, device);
    let b = Tensor::<D>::random(b_dims, Distribution::Default, device);
    let flops = 2.0 * a_dims.iter().product::<usize>() as f64 * b_dims[D - 1] as f64;
    report(args, device, name, flops, || {
        let _ = a.clone().matmul(b.clone()).into_data();
    });
}

fn report(args: &Args, device: &Device, name: &str, flops: f64, mut op: impl FnMut()) {
    op();
    let _ = device.sync();
    let mut times: Vec<f64> = (0..args.reps)
        .map(|_| {
            let start = Instant::now();
            op();
            let _ = device.sync();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{}",
        serde_json::json!({
            "op": name, "device": args.device, "median_s": median,
            "gflops": flops / median / 1e9, "times_s": times,
        })
    );
}

fn pick_device(name: &str) -> anyhow::Result<Device> {
    if name == "ndarray" {
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)] // burn-ndarray is deprecated; measured here to show why.
        return Ok(Device::ndarray());
        #[cfg(not(feature = "ndarray"))]
        anyhow::bail!("the ndarray backend needs `--features ndarray`");
    }
    Ok(name.parse::<DeviceChoice>()?.device()?)
}
