//! A guided model evaluation that fails stops sampling at once: the sampler returns the
//! error of the first failing evaluation and evaluates nothing after it (the guidance
//! denoiser used to keep the error and hand its input back for the remaining steps).

mod common;

use std::cell::Cell;
use std::ops::ControlFlow;

use burn::tensor::{Device, Tensor};
use common::ROOT;
use sd_core::conditioning::StepConds;
use sd_core::pipeline::{CfgDenoiser, GuidanceConds};
use sd_core::sd_schedulers::{
    RecordedNoise, SamplerKind, SamplerOptions, SigmaSchedule, SigmaScheduleOptions,
};
use sd_core::{CoreError, StableDiffusion};

#[test]
fn a_failing_evaluation_stops_the_sampler_with_its_error() {
    let device = Device::default();
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &device)
        .unwrap_or_else(|e| panic!("tiny-sd1: {e}"));
    let width = model.architecture().unet.cross_attention_dim;
    let calls = Cell::new(0usize);
    // Step 0 gets an empty prompt's worth of zeros; step 2 fails as a real provider would on a
    // prompt it cannot encode.
    let mut provider = |step: usize| {
        calls.set(calls.get() + 1);
        if step == 2 {
            return Err(CoreError::InvalidRequest {
                name: "prompt",
                reason: "refused at step 2".into(),
            });
        }
        let zeros = Tensor::<3>::zeros([1, 77, width], &device);
        Ok(GuidanceConds {
            conds: StepConds {
                conds_list: vec![vec![(0, 1.0)]],
                tensor: zeros.clone(),
            },
            uncond: zeros,
        })
    };
    let mut denoiser = CfgDenoiser::new(
        &model.unet,
        model.noise_schedule(),
        model.architecture().prediction,
        &mut provider,
        7.0,
    );
    let ns = model.noise_schedule();
    let kind = SamplerKind::Euler;
    let plan = kind
        .plan(
            SigmaSchedule::Automatic,
            6,
            ns,
            &SigmaScheduleOptions::default(),
        )
        .expect("plan");
    let x = Tensor::<4>::ones([1, 4, 8, 8], &device).mul_scalar(plan.initial_noise_scale());
    let mut steps_reported = 0;
    let result = kind.sample(
        &mut denoiser,
        ns,
        x,
        &plan,
        &mut RecordedNoise::new([]),
        &SamplerOptions::default(),
        &mut |_| {
            steps_reported += 1;
            ControlFlow::Continue(())
        },
    );
    match result {
        Err(CoreError::InvalidRequest { reason, .. }) => assert_eq!(reason, "refused at step 2"),
        other => panic!("expected the provider's error, got {other:?}"),
    }
    assert_eq!(calls.get(), 3, "evaluations after the failure");
    assert_eq!(steps_reported, 2, "steps reported after the failure");
}
