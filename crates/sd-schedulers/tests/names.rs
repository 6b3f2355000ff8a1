//! Sampler and schedule names parse from and print to A1111's strings: the full sampler
//! table of A1111 1.10 (labels, aliases, options), the "Schedule type" list, and the old
//! combined names ("DPM++ 2M Karras", "LMS Karras", ...).

use sd_schedulers::{SamplerKind, SamplerSpec, SigmaSchedule};

/// A1111 1.10 `samplers_k_diffusion` + `samplers_timesteps` (label, aliases, default
/// scheduler, discard_next_to_last_sigma, second_order, brownian_noise, uses_ensd).
type Row = (
    &'static str,
    &'static [&'static str],
    Option<&'static str>,
    bool,
    bool,
    bool,
    bool,
);

const TABLE: &[Row] = &[
    (
        "DPM++ 2M",
        &["k_dpmpp_2m"],
        Some("karras"),
        false,
        false,
        false,
        false,
    ),
    (
        "DPM++ SDE",
        &["k_dpmpp_sde"],
        Some("karras"),
        false,
        true,
        true,
        false,
    ),
    (
        "DPM++ 2M SDE",
        &["k_dpmpp_2m_sde"],
        Some("exponential"),
        false,
        false,
        true,
        false,
    ),
    (
        "DPM++ 2M SDE Heun",
        &["k_dpmpp_2m_sde_heun"],
        Some("exponential"),
        false,
        false,
        true,
        false,
    ),
    (
        "DPM++ 2S a",
        &["k_dpmpp_2s_a"],
        Some("karras"),
        false,
        true,
        false,
        true,
    ),
    (
        "DPM++ 3M SDE",
        &["k_dpmpp_3m_sde"],
        Some("exponential"),
        true,
        false,
        true,
        false,
    ),
    (
        "Euler a",
        &["k_euler_a", "k_euler_ancestral"],
        None,
        false,
        false,
        false,
        true,
    ),
    ("Euler", &["k_euler"], None, false, false, false, false),
    ("LMS", &["k_lms"], None, false, false, false, false),
    ("Heun", &["k_heun"], None, false, true, false, false),
    (
        "DPM2",
        &["k_dpm_2"],
        Some("karras"),
        true,
        true,
        false,
        false,
    ),
    (
        "DPM2 a",
        &["k_dpm_2_a"],
        Some("karras"),
        true,
        true,
        false,
        true,
    ),
    ("DPM fast", &["k_dpm_fast"], None, false, false, false, true),
    (
        "DPM adaptive",
        &["k_dpm_ad"],
        None,
        false,
        false,
        false,
        true,
    ),
    (
        "Restart",
        &["restart"],
        Some("karras"),
        false,
        true,
        false,
        false,
    ),
    ("DDIM", &["ddim"], None, false, false, false, false),
    ("PLMS", &["plms"], None, false, false, false, false),
    ("UniPC", &["unipc"], None, false, false, false, false),
];

#[test]
fn the_full_sampler_table_round_trips() {
    assert_eq!(SamplerKind::ALL.len(), TABLE.len());
    for (kind, (label, aliases, sched, discard, second, brownian, ensd)) in
        SamplerKind::ALL.iter().zip(TABLE)
    {
        let info = kind.info();
        assert_eq!(info.label, *label);
        assert_eq!(kind.to_string(), *label);
        assert_eq!(info.aliases, *aliases);
        assert_eq!(info.scheduler.map(|s| s.name()), *sched, "{label}");
        assert_eq!(info.discard_next_to_last_sigma, *discard, "{label}");
        assert_eq!(info.second_order, *second, "{label}");
        assert_eq!(info.brownian_noise, *brownian, "{label}");
        assert_eq!(info.uses_ensd, *ensd, "{label}");
        assert_eq!(label.parse::<SamplerKind>().expect("label"), *kind);
        for a in *aliases {
            assert_eq!(a.parse::<SamplerKind>().expect("alias"), *kind);
        }
    }
    assert!("Euler b".parse::<SamplerKind>().is_err());
}

#[test]
fn schedule_types_round_trip() {
    let labels = [
        ("Automatic", "automatic"),
        ("Uniform", "uniform"),
        ("Karras", "karras"),
        ("Exponential", "exponential"),
        ("Polyexponential", "polyexponential"),
        ("SGM Uniform", "sgm_uniform"),
        ("KL Optimal", "kl_optimal"),
        ("Align Your Steps", "align_your_steps"),
        ("Simple", "simple"),
        ("Normal", "normal"),
        ("DDIM", "ddim"),
        ("Beta", "beta"),
    ];
    for (st, (label, name)) in SigmaSchedule::ALL.iter().zip(labels) {
        assert_eq!(st.to_string(), label);
        assert_eq!(st.name(), name);
        assert_eq!(label.parse::<SigmaSchedule>().expect("label"), *st);
        assert_eq!(name.parse::<SigmaSchedule>().expect("name"), *st);
    }
    assert_eq!(
        "SGMUniform".parse::<SigmaSchedule>().expect("alias"),
        SigmaSchedule::SgmUniform
    );
    assert!("Cosine".parse::<SigmaSchedule>().is_err());
}

#[test]
fn combined_names_split_like_get_sampler_and_scheduler() {
    let cases = [
        ("DPM++ 2M Karras", "DPM++ 2M", SigmaSchedule::Automatic), // Karras is its default
        ("LMS Karras", "LMS", SigmaSchedule::Karras),
        ("Euler a", "Euler a", SigmaSchedule::Automatic),
        ("Euler a Exponential", "Euler a", SigmaSchedule::Exponential),
        ("DPM++ 2M SDE Karras", "DPM++ 2M SDE", SigmaSchedule::Karras),
        (
            "DPM++ 2M SDE Exponential",
            "DPM++ 2M SDE",
            SigmaSchedule::Automatic,
        ),
        (
            "DPM++ 2M SDE Heun Karras",
            "DPM++ 2M SDE Heun",
            SigmaSchedule::Karras,
        ),
        ("DPM++ 3M SDE Karras", "DPM++ 3M SDE", SigmaSchedule::Karras),
        ("DPM2 a Karras", "DPM2 a", SigmaSchedule::Automatic),
        ("Euler sgm_uniform", "Euler", SigmaSchedule::SgmUniform),
        ("Euler SGMUniform", "Euler", SigmaSchedule::SgmUniform),
        (
            "Heun Align Your Steps",
            "Heun",
            SigmaSchedule::AlignYourSteps,
        ),
        ("k_dpmpp_2m_ka", "DPM++ 2M", SigmaSchedule::Automatic),
        ("k_lms_ka", "LMS", SigmaSchedule::Karras),
        ("DDIM", "DDIM", SigmaSchedule::Automatic),
    ];
    for (input, sampler, schedule) in cases {
        let spec: SamplerSpec = input.parse().expect(input);
        assert_eq!(spec.sampler.label(), sampler, "{input}");
        assert_eq!(spec.sigma_schedule, schedule, "{input}");
    }
    // Infotext style: the schedule comes separately.
    let spec = SamplerSpec::parse("DPM++ 2M", Some("Karras")).expect("ok");
    assert_eq!(spec.sigma_schedule, SigmaSchedule::Automatic);
    assert_eq!(spec.effective_sigma_schedule(), SigmaSchedule::Karras);
    let spec = SamplerSpec::parse("Euler", Some("Karras")).expect("ok");
    assert_eq!(spec.to_string(), "Euler Karras");
    assert_eq!(
        SamplerSpec::parse("Euler a", None).expect("ok").to_string(),
        "Euler a"
    );
    assert!(SamplerSpec::parse("Nope Karras", None).is_err());
}
