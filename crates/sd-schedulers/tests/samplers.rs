//! Golden tests of every implemented sampler against k-diffusion (and A1111's own DDIM,
//! PLMS and Restart), with the analytic denoiser D(x, σ) = x/√(1+σ²) + 0.1·tanh(x) and the
//! per-step noise replayed from the fixture (tools/sampler_reference.py). Every callback's
//! x and denoised, and the final latent, are compared for 1, 2, 10 and 30 steps, plus
//! variants (churn, η, other schedules) at 10 steps.

mod common;

use std::ops::ControlFlow;

use common::{Fixture, analytic, device, rel_err, values};
use sd_schedulers::{
    Churn, NoiseKind, NoiseSchedule, Plan, RecordedNoise, SamplerKind, SamplerOptions,
    SigmaSchedule, SigmaScheduleOptions, StepInfo,
};

/// Tolerance on max|a − b| / max|b| of every intermediate latent. The reference computes
/// in float32 torch, we in float32 burn; reached at most ~2e-6 (see the printout with
/// `--nocapture`).
const TOL: f64 = 1e-5;

fn params(case: &serde_json::Value) -> (SamplerOptions, SigmaSchedule) {
    let p = &case["params"];
    let get = |k: &str| {
        p.get(k)
            .and_then(|v| v.as_f64().or_else(|| v.as_str().map(|_| f64::INFINITY)))
    };
    let mut o = SamplerOptions::default();
    if let Some(e) = get("eta") {
        o.eta = Some(e);
    }
    let d = Churn::default();
    o.churn = Churn {
        s_churn: get("s_churn").map_or(d.s_churn, |v| v as f32),
        s_tmin: get("s_tmin").map_or(d.s_tmin, |v| v as f32),
        s_tmax: get("s_tmax").map_or(d.s_tmax, |v| v as f32),
        s_noise: get("s_noise").map_or(d.s_noise, |v| v as f32),
    };
    let schedule = case["schedule"]
        .as_str()
        .map_or(SigmaSchedule::Automatic, |s| {
            s.parse().expect("schedule label")
        });
    (o, schedule)
}

#[test]
fn every_sampler_matches_the_reference_at_every_step() {
    let f = Fixture::open("samplers.safetensors");
    let cases: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{}/cases.json", common::FIXTURES)).expect("cases.json"),
    )
    .expect("json");
    let ns = NoiseSchedule::sd();
    let dev = device();
    let x_init = f.tensor4("x_init", &dev);
    let mut worst = 0f64;
    let mut runs = 0;
    for case in cases.as_array().expect("list") {
        let name = case["case"].as_str().expect("name");
        let kind: SamplerKind = case["sampler"]
            .as_str()
            .expect("sampler")
            .parse()
            .expect("known sampler");
        let (opts, schedule) = params(case);
        for n in case["steps"]
            .as_array()
            .expect("steps")
            .iter()
            .map(|v| v.as_u64().expect("n") as usize)
        {
            let key = format!("{name}/{n}");
            let plan = kind
                .plan(schedule, n, &ns, &SigmaScheduleOptions::default())
                .expect("plan");
            let want_sigmas = f.vec(&format!("{key}/sigmas"));
            match &plan {
                Plan::Sigmas(s) => {
                    assert_eq!(s.len(), want_sigmas.len(), "{key}: sigma count");
                    for (a, b) in s.iter().zip(&want_sigmas) {
                        assert!(
                            (a - b).abs() <= 2e-6 * b.abs(),
                            "{key}: sigmas {s:?} vs {want_sigmas:?}"
                        );
                    }
                }
                Plan::Timesteps(t) => {
                    let t: Vec<f32> = t.iter().map(|v| *v as f32).collect();
                    assert_eq!(t, want_sigmas, "{key}: timesteps");
                }
                Plan::DpmSolver { start_sigma, .. } => {
                    assert!(
                        (start_sigma - want_sigmas[0]).abs() <= 2e-6 * want_sigmas[0],
                        "{key}"
                    );
                }
                _ => unreachable!(),
            }
            let mut noise = RecordedNoise::new(f.stack(&format!("{key}/noise"), &dev));
            let want_noise_sigmas = f.vec(&format!("{key}/noise_sigmas"));
            let want_x = f.stack(&format!("{key}/x"), &dev);
            let want_d = f.stack(&format!("{key}/denoised"), &dev);
            let mut got: Vec<(Vec<f32>, Vec<f32>)> = Vec::new();
            let mut cb = |s: &StepInfo<'_>| {
                got.push((values(s.x), values(s.denoised)));
                ControlFlow::Continue(())
            };
            let mut den = analytic;
            let x = x_init.clone().mul_scalar(plan.initial_noise_scale());
            let out = kind
                .sample(&mut den, &ns, x, &plan, &mut noise, &opts, &mut cb)
                .expect("sample");
            assert_eq!(out.cancelled_at, None);
            assert_eq!(got.len(), want_x.len(), "{key}: callback count");
            for (i, ((gx, gd), (wx, wd))) in got.iter().zip(want_x.iter().zip(&want_d)).enumerate()
            {
                let ex = rel_err(gx, &values(wx));
                let ed = rel_err(gd, &values(wd));
                worst = worst.max(ex).max(ed);
                assert!(
                    ex < TOL && ed < TOL,
                    "{key} step {i}: x err {ex:e}, denoised err {ed:e}"
                );
            }
            let eo = rel_err(&values(&out.latent), &f.vec(&format!("{key}/out")));
            worst = worst.max(eo);
            assert!(eo < TOL, "{key}: final err {eo:e}");
            // Every recorded noise tensor consumed, none missing; Brownian calls at the same σ.
            assert_eq!(
                noise.missing(),
                0,
                "{key}: asked for more noise than recorded"
            );
            assert_eq!(noise.remaining(), 0, "{key}: recorded noise left unused");
            for (r, w) in noise
                .requests()
                .iter()
                .zip(want_noise_sigmas.chunks_exact(2))
            {
                if r.kind == NoiseKind::Brownian {
                    assert!(
                        (r.sigma - w[0]).abs() <= 1e-5 * w[0]
                            && (r.sigma_next - w[1]).abs() <= 1e-5 * w[1],
                        "{key}: brownian σ"
                    );
                }
            }
            runs += 1;
        }
    }
    println!("{runs} runs, worst relative error {worst:e}");
    assert!(runs >= 70);
}

#[test]
fn two_and_three_m_sde_at_one_step_return_the_denoised_latent() {
    // k-diffusion raises UnboundLocalError here (no fixture); we land on D(x, σ_max).
    let ns = NoiseSchedule::sd();
    let dev = device();
    let x = burn::tensor::Tensor::<4>::ones([1, 4, 2, 2], &dev);
    for kind in [
        SamplerKind::DpmPp2MSde,
        SamplerKind::DpmPp2MSdeHeun,
        SamplerKind::DpmPp3MSde,
    ] {
        let plan = kind
            .plan(
                SigmaSchedule::Automatic,
                1,
                &ns,
                &SigmaScheduleOptions::default(),
            )
            .expect("plan");
        let x0 = x.clone().mul_scalar(plan.initial_noise_scale());
        let mut noise = RecordedNoise::default();
        let mut den = analytic;
        let out = kind
            .sample(
                &mut den,
                &ns,
                x0.clone(),
                &plan,
                &mut noise,
                &SamplerOptions::default(),
                &mut |_| ControlFlow::Continue(()),
            )
            .expect("sample");
        let want = analytic(x0, plan.initial_noise_scale());
        assert!(rel_err(&values(&out.latent), &values(&want)) < 1e-7);
    }
}

#[test]
fn the_callback_can_cancel_and_gets_the_last_denoised() {
    let ns = NoiseSchedule::sd();
    let dev = device();
    let x = burn::tensor::Tensor::<4>::ones([1, 4, 2, 2], &dev);
    let kind = SamplerKind::Euler;
    let plan = kind
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
        if s.step == 3 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let mut den = analytic;
    let mut noise = RecordedNoise::default();
    let out = kind
        .sample(
            &mut den,
            &ns,
            x,
            &plan,
            &mut noise,
            &SamplerOptions::default(),
            &mut cb,
        )
        .expect("sample");
    assert_eq!(out.cancelled_at, Some(3));
    assert_eq!(Some(values(&out.latent)), last);
}
