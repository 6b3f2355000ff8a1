//! A denoiser that fails stops every sampler at once: `sample` returns its error, and no model
//! evaluation or step callback follows the failure.

use std::cell::Cell;
use std::ops::ControlFlow;
use std::rc::Rc;

use burn::tensor::{Device, Tensor};
use sd_schedulers::{
    Denoiser, NoiseSchedule, RecordedNoise, SamplerKind, SamplerOptions, SchedulerError,
    SigmaSchedule, SigmaScheduleOptions,
};

/// The caller's error type: the model's own failure, or the sampler's refusal.
#[derive(Debug)]
enum RunError {
    Model { call: usize },
    Scheduler(SchedulerError),
}

impl From<SchedulerError> for RunError {
    fn from(e: SchedulerError) -> Self {
        Self::Scheduler(e)
    }
}

/// `x / (σ² + 1)`, failing on evaluation number `fail_at` (1-based).
struct FailsAt {
    fail_at: usize,
    calls: usize,
    failed: Rc<Cell<bool>>,
}

impl FailsAt {
    fn new(fail_at: usize) -> Self {
        Self {
            fail_at,
            calls: 0,
            failed: Rc::default(),
        }
    }
}

impl Denoiser for FailsAt {
    type Error = RunError;

    fn denoise(&mut self, x: Tensor<4>, sigma: f32) -> Result<Tensor<4>, RunError> {
        self.calls += 1;
        if self.calls == self.fail_at {
            self.failed.set(true);
            return Err(RunError::Model { call: self.calls });
        }
        Ok(x.div_scalar(1.0 + sigma * sigma))
    }
}

#[test]
fn every_sampler_stops_at_the_first_denoiser_error() {
    let ns = NoiseSchedule::sd();
    let device = Device::flex();
    for kind in SamplerKind::ALL {
        let plan = kind
            .plan(
                SigmaSchedule::Automatic,
                10,
                &ns,
                &SigmaScheduleOptions::default(),
            )
            .expect("plan");
        let mut denoiser = FailsAt::new(3);
        let failed = Rc::clone(&denoiser.failed);
        let mut reports_after_failure = 0;
        let x = Tensor::<4>::ones([1, 4, 2, 2], &device).mul_scalar(plan.initial_noise_scale());
        let result = kind.sample(
            &mut denoiser,
            &ns,
            x,
            &plan,
            &mut RecordedNoise::new([]),
            &SamplerOptions::default(),
            &mut |_| {
                reports_after_failure += usize::from(failed.get());
                ControlFlow::Continue(())
            },
        );
        assert!(
            matches!(result, Err(RunError::Model { call: 3 })),
            "{kind}: {result:?}"
        );
        assert_eq!(denoiser.calls, 3, "{kind}: evaluations after the failure");
        assert_eq!(reports_after_failure, 0, "{kind}: steps after the failure");
    }
}

#[test]
fn a_refused_setting_arrives_as_the_callers_error() {
    let ns = NoiseSchedule::sd();
    let device = Device::flex();
    let kind = SamplerKind::EulerA;
    let plan = kind
        .plan(
            SigmaSchedule::Automatic,
            4,
            &ns,
            &SigmaScheduleOptions::default(),
        )
        .expect("plan");
    let mut denoiser = FailsAt::new(usize::MAX);
    let options = SamplerOptions {
        eta: Some(f64::NAN),
        ..SamplerOptions::default()
    };
    let result = kind.sample(
        &mut denoiser,
        &ns,
        Tensor::<4>::ones([1, 4, 2, 2], &device),
        &plan,
        &mut RecordedNoise::new([]),
        &options,
        &mut |_| ControlFlow::Continue(()),
    );
    assert!(
        matches!(
            result,
            Err(RunError::Scheduler(SchedulerError::InvalidParameter {
                name: "eta",
                ..
            }))
        ),
        "{result:?}"
    );
    assert_eq!(denoiser.calls, 0);
}
