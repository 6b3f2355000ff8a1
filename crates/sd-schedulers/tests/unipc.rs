//! Golden tests of UniPC against A1111's own `unipc` / `uni_pc.py` (tools/unipc_reference.py),
//! with the analytic denoiser D(x, σ) = x/√(1+σ²) + 0.1·tanh(x) and samplers.safetensors'
//! initial noise (its top-left 2×2 pixels). Every callback's x and denoised, the final latent
//! and the model's timesteps are compared, for A1111's default settings at 1, 2, 10 and 30
//! steps and every other setting A1111 offers (variants, skip types, orders, lower order
//! final, img2img), including the step counts at which A1111 fails.

mod common;

use std::ops::ControlFlow;

use common::{Fixture, analytic, device, rel_err, values};
use sd_schedulers::samplers::unipc::{self, SkipType, UniPcOptions, Variant};
use sd_schedulers::{
    NoiseSchedule, Plan, RecordedNoise, SamplerKind, SamplerOptions, SchedulerError, SigmaSchedule,
    SigmaScheduleOptions, StepInfo,
};

/// Tolerance on max|a − b| / max|b| of every intermediate latent. The reference runs the
/// latents in float64 with A1111's float32 coefficients, we everything in float32; reached
/// at most 1.7e-6 (order 1, one step), 1.2e-6 at 30 steps (printed with `--nocapture`).
const TOL: f64 = 1e-5;

fn cases() -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(format!("{}/unipc_cases.json", common::FIXTURES))
        .expect("unipc_cases.json");
    let v: serde_json::Value = serde_json::from_str(&text).expect("json");
    v.as_array().expect("list").clone()
}

fn options(case: &serde_json::Value) -> UniPcOptions {
    UniPcOptions {
        variant: case["variant"]
            .as_str()
            .expect("variant")
            .parse()
            .expect("variant"),
        skip_type: case["skip_type"]
            .as_str()
            .expect("skip")
            .parse()
            .expect("skip"),
        order: case["order"].as_u64().expect("order") as usize,
        lower_order_final: case["lower_order_final"].as_bool().expect("lof"),
    }
}

/// The plan and start of a run: txt2img from the noise, or A1111's img2img glue
/// (`timesteps[..t_enc]`, the start latent taken from the fixture).
fn plan(ns: &NoiseSchedule, n: usize, strength: Option<f64>) -> Vec<usize> {
    let Plan::Timesteps(t) = SamplerKind::UniPc
        .plan(
            SigmaSchedule::Automatic,
            n,
            ns,
            &SigmaScheduleOptions::default(),
        )
        .expect("plan")
    else {
        panic!("UniPC plans timesteps");
    };
    match strength {
        None => t,
        Some(s) => {
            let t_enc = (s.min(0.999) * n as f64) as usize;
            t[..t_enc].to_vec()
        }
    }
}

#[test]
fn unipc_matches_a1111_at_every_step() {
    let f = Fixture::open("unipc.safetensors");
    let ns = NoiseSchedule::sd();
    let dev = device();
    let x_init = f.tensor4("x_init", &dev);
    let mut worst = 0f64;
    let mut runs = 0;
    let mut failures = 0;
    for case in cases() {
        let name = case["case"].as_str().expect("name");
        let unipc_opts = options(&case);
        let strength = case["img2img_strength"].as_f64();
        let opts = SamplerOptions {
            unipc: unipc_opts,
            img2img: strength.is_some(),
            ..SamplerOptions::default()
        };
        // Where A1111 asserts (order > steps), we refuse too.
        for n in case["errors"].as_object().expect("errors").keys() {
            let n: usize = n.parse().expect("step count");
            let t = plan(&ns, n, strength);
            let err = SamplerKind::UniPc
                .sample(
                    &mut analytic,
                    &ns,
                    x_init.clone(),
                    &Plan::Timesteps(t),
                    &mut RecordedNoise::default(),
                    &opts,
                    &mut |_| ControlFlow::Continue(()),
                )
                .expect_err("A1111 fails here");
            assert!(
                matches!(
                    err,
                    SchedulerError::InvalidParameter {
                        name: "UniPC order",
                        ..
                    }
                ),
                "{name}/{n}: {err}"
            );
            failures += 1;
        }
        for n in case["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|v| v.as_u64().expect("n") as usize)
        {
            let key = format!("{name}/{n}");
            let t = plan(&ns, n, strength);
            let want_t: Vec<f32> = f.vec(&format!("{key}/timesteps"));
            let t_f: Vec<f32> = t.iter().map(|&v| v as f32).collect();
            assert_eq!(t_f, want_t, "{key}: timesteps");
            let start = f.tensor4(&format!("{key}/start"), &dev);
            let want_x = f.stack(&format!("{key}/x"), &dev);
            let want_d = f.stack(&format!("{key}/denoised"), &dev);
            // The model's (fractional) timesteps: σ = t_to_sigma(timestep) is what the
            // denoiser is called with, in the same order.
            let want_sigmas: Vec<f32> = f
                .vec(&format!("{key}/t_input"))
                .into_iter()
                .map(|t| ns.t_to_sigma(t))
                .collect();
            let mut got_sigmas = Vec::new();
            let mut den = |x: burn::tensor::Tensor<4>, sigma: f32| {
                got_sigmas.push(sigma);
                analytic(x, sigma)
            };
            let mut run_worst = 0f64;
            let mut got: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
            let mut cb = |s: &StepInfo<'_>| {
                assert_eq!(s.step, got.len());
                got.push((values(s.x), values(s.denoised)));
                ControlFlow::Continue(())
            };
            let out = SamplerKind::UniPc
                .sample(
                    &mut den,
                    &ns,
                    start,
                    &Plan::Timesteps(t.clone()),
                    &mut RecordedNoise::default(),
                    &opts,
                    &mut cb,
                )
                .expect("sample");
            assert_eq!(out.cancelled_at, None);
            assert_eq!(got_sigmas.len(), want_sigmas.len(), "{key}: model calls");
            let mut sigma_err = 0f32;
            for (i, (a, b)) in got_sigmas.iter().zip(&want_sigmas).enumerate() {
                // The continuous times are float32 arithmetic of the same operations; reached
                // 2.4e-7 (a few ulp, mostly bit-identical).
                sigma_err = sigma_err.max((a - b).abs() / b);
                assert!((a - b).abs() <= 1e-6 * b, "{key} call {i}: σ {a} vs {b}");
            }
            assert_eq!(got.len(), want_x.len(), "{key}: callback count");
            for (i, ((gx, gd), (wx, wd))) in got.iter().zip(want_x.iter().zip(&want_d)).enumerate()
            {
                let ex = rel_err(gx, &values(wx));
                run_worst = run_worst.max(ex);
                assert!(ex < TOL, "{key} step {i}: x err {ex:e}");
                let wd = values(wd);
                // A1111 reports no denoised at the last step (NaN in the fixture).
                if wd.iter().all(|v| v.is_nan()) {
                    assert_eq!(i, got.len() - 1, "{key}: only the last step lacks denoised");
                    continue;
                }
                let ed = rel_err(gd, &wd);
                run_worst = run_worst.max(ed);
                assert!(ed < TOL, "{key} step {i}: denoised err {ed:e}");
            }
            let eo = rel_err(&values(&out.latent), &f.vec(&format!("{key}/out")));
            run_worst = run_worst.max(eo);
            assert!(eo < TOL, "{key}: final err {eo:e}");
            println!(
                "{key}: {} steps, worst {run_worst:.1e}, model σ {sigma_err:.1e}",
                got.len()
            );
            worst = worst.max(run_worst);
            runs += 1;
        }
    }
    println!("{runs} runs, {failures} refusals, worst relative error {worst:e}");
    assert!(runs >= 18 && failures >= 7);
}

#[test]
fn the_time_grid_starts_where_a1111_says() {
    let ns = NoiseSchedule::sd();
    let opts = UniPcOptions::default();
    let t = plan(&ns, 10, None);
    let ts = unipc::time_steps(&ns, &t, &opts, false);
    assert_eq!(ts.len(), 11);
    assert_eq!(ts[0], 1.0);
    assert_eq!(ts[10], 0.001);
    // img2img at strength 0.5: timesteps[..5] ends at 401; A1111 starts at 0.401 + 0.001.
    let t = plan(&ns, 10, Some(0.5));
    assert_eq!(t.last(), Some(&401));
    let ts = unipc::time_steps(&ns, &t, &opts, true);
    assert_eq!(ts.len(), 6);
    assert!((ts[0] - 0.402).abs() < 1e-7);
}

#[test]
fn settings_parse_and_print_as_a1111_writes_them() {
    for v in Variant::ALL {
        assert_eq!(v.to_string().parse::<Variant>().expect("variant"), v);
    }
    for s in SkipType::ALL {
        assert_eq!(s.to_string().parse::<SkipType>().expect("skip"), s);
    }
    assert_eq!(
        "logSNR".parse::<SkipType>().expect("skip"),
        SkipType::LogSnr
    );
    assert_eq!(
        "vary_coeff".parse::<Variant>().expect("variant"),
        Variant::VaryCoeff
    );
    assert!("bh3".parse::<Variant>().is_err());
    let d = UniPcOptions::default();
    assert_eq!(
        (d.variant, d.skip_type, d.order, d.lower_order_final),
        (Variant::Bh1, SkipType::TimeUniform, 3, true)
    );
    assert!(UniPcOptions { order: 0, ..d }.check(5).is_err());
}

#[test]
fn the_callback_can_cancel_unipc() {
    let ns = NoiseSchedule::sd();
    let dev = device();
    let x = burn::tensor::Tensor::<4>::ones([1, 4, 2, 2], &dev);
    let plan = SamplerKind::UniPc
        .plan(
            SigmaSchedule::Automatic,
            10,
            &ns,
            &SigmaScheduleOptions::default(),
        )
        .expect("plan");
    let mut last = None;
    let mut cb = |s: &StepInfo<'_>| {
        last = Some(values(s.denoised));
        if s.step == 4 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let out = SamplerKind::UniPc
        .sample(
            &mut analytic,
            &ns,
            x,
            &plan,
            &mut RecordedNoise::default(),
            &SamplerOptions::default(),
            &mut cb,
        )
        .expect("sample");
    assert_eq!(out.cancelled_at, Some(4));
    assert_eq!(Some(values(&out.latent)), last);
}
