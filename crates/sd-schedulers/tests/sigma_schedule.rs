//! Golden tests of the noise schedule, σ ↔ t maps, denoiser scalings, every A1111 schedule
//! type and the DDPM forward process, against k-diffusion / A1111 / diffusers
//! (fixtures/samplers/{schedules,ddpm}.safetensors, made by tools/sampler_reference.py).

mod common;

use common::{Fixture, device, rel_err, values};
use sd_schedulers::{
    Denoiser, DiscreteDenoiser, NoiseSchedule, Prediction, SigmaSchedule, SigmaScheduleOptions,
    ddpm, sigma_schedule,
};

fn max_rel(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ: {a:?} vs {b:?}");
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            if *y == 0.0 {
                (*x as f64).abs()
            } else {
                ((*x as f64 - *y as f64) / *y as f64).abs()
            }
        })
        .fold(0.0, f64::max)
}

#[test]
fn alphas_cumprod_and_sigmas_match_ldm_and_k_diffusion() {
    let f = Fixture::open("schedules.safetensors");
    let ns = NoiseSchedule::sd();
    // Same float64 path, rounded once to float32: bit-identical.
    assert_eq!(ns.alphas_cumprod(), &f.vec("alphas_cumprod")[..]);
    // ((1 - a) / a) ** 0.5 in float32 on both sides, but torch's vectorised CPU kernels do
    // not round every division/sqrt correctly (ours are IEEE): reached 1 ulp (< 1.2e-7
    // relative) on some entries, identical elsewhere.
    let e = max_rel(ns.sigmas(), &f.vec("sigmas"));
    assert!(e < 1.5e-7, "sigma table differs by {e:e}");
}

#[test]
fn sigma_to_t_and_t_to_sigma_match_discrete_schedule() {
    let f = Fixture::open("schedules.safetensors");
    let ns = NoiseSchedule::sd();
    let sig = f.vec("probe/sigmas");
    let t: Vec<f32> = sig.iter().map(|s| ns.sigma_to_t(*s)).collect();
    // float32 log/interpolation on both sides; reached 0 difference but allow 1 ulp of t.
    for (a, b) in t.iter().zip(f.vec("probe/sigma_to_t")) {
        assert!((a - b).abs() <= 1e-4, "sigma_to_t {a} vs {b}");
    }
    let ts = f.vec("probe/t");
    let s: Vec<f32> = ts.iter().map(|t| ns.t_to_sigma(*t)).collect();
    // Reached <= 1 ulp (expf of libm vs torch).
    assert!(max_rel(&s, &f.vec("probe/t_to_sigma")) < 1e-6);
}

#[test]
fn discrete_denoisers_match_k_diffusion_wrappers() {
    let f = Fixture::open("schedules.safetensors");
    let ns = NoiseSchedule::sd();
    let dev = device();
    let x = f.tensor4("probe/x", &dev);
    let out = f.tensor4("probe/model_out", &dev);
    for s in ["0.1", "1.0", "14.6146"] {
        let sigma: f32 = s.parse().expect("number");
        for (pred, key) in [(Prediction::Epsilon, "eps"), (Prediction::V, "v")] {
            let mut seen_t = f32::NAN;
            let mut seen_x = None;
            let model = |x_in: burn::tensor::Tensor<4>, t: f32| {
                seen_t = t;
                seen_x = Some(x_in);
                out.clone()
            };
            let mut d = DiscreteDenoiser::new(model, &ns, pred);
            let got = d.denoise(x.clone(), sigma).expect("a closure never fails");
            // Scalings in float32 on both sides; reached ~1e-7.
            assert!(
                rel_err(&values(&got), &f.vec(&format!("probe/{key}/{s}"))) < 1e-6,
                "{key} at {s}"
            );
            let want_t = f.vec(&format!("probe/{key}/{s}/t"))[0];
            assert!((seen_t - want_t).abs() < 1e-3, "t {seen_t} vs {want_t}");
            if key == "eps" {
                let x_in = seen_x.expect("model called");
                assert!(rel_err(&values(&x_in), &f.vec(&format!("probe/eps/{s}/x_in"))) < 1e-6);
            }
        }
    }
}

#[test]
fn every_schedule_type_matches_a1111() {
    let f = Fixture::open("schedules.safetensors");
    let ns = NoiseSchedule::sd();
    let opts = SigmaScheduleOptions::default();
    let mut checked = 0;
    for st in SigmaSchedule::ALL {
        for n in [1usize, 2, 3, 10, 11, 20, 30] {
            let want = f.vec(&format!("schedule/{}/{n}", st.label()));
            let got = sigma_schedule::sigmas(st, n, &ns, &opts).expect("valid");
            // float32 on both sides, same operation order; reached <= 4e-7 relative (libm
            // pow/exp/atan vs torch's differ by an ulp at most).
            let e = max_rel(&got, &want);
            assert!(
                e < 2e-6,
                "{} n={n}: rel {e}\n got {got:?}\nwant {want:?}",
                st.label()
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 12 * 7);
    let k = sigma_schedule::karras(10, 0.1, 10.0, 3.0);
    assert!(max_rel(&k, &f.vec("schedule/Karras rho=3/10")) < 2e-6);
    let p = sigma_schedule::polyexponential(10, ns.sigma_min(), ns.sigma_max(), 2.0);
    assert!(max_rel(&p, &f.vec("schedule/Polyexponential rho=2/10")) < 2e-6);
}

#[test]
fn ddpm_forward_process_matches_diffusers() {
    let f = Fixture::open("ddpm.safetensors");
    let ns = NoiseSchedule::sd();
    let dev = device();
    let x0 = f.tensor4("x0", &dev);
    let noise = f.tensor4("noise", &dev);
    let t: Vec<usize> = f.vec("timesteps").iter().map(|v| *v as usize).collect();
    let noisy = ddpm::add_noise(&ns, x0.clone(), noise.clone(), &t);
    let v = ddpm::velocity(&ns, x0, noise, &t);
    // diffusers builds its betas in float32, LDM (and we) in float64: the two schedules differ
    // by ~1e-7 relative; reached 2e-7.
    assert!(rel_err(&values(&noisy), &f.vec("add_noise")) < 2e-6);
    assert!(rel_err(&values(&v), &f.vec("velocity")) < 2e-6);
    let ts = ddpm::sample_timesteps(&ns, 64, &dev).expect("read back");
    assert_eq!(ts.len(), 64);
    assert!(ts.iter().all(|t| *t < 1000));
}
