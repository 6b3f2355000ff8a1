//! A1111 hypernetworks (issue 27) against `tools/hypernetwork_reference.py`: A1111's
//! `HypernetworkModule` and `apply_hypernetworks` transcribed, run on the key and value inputs
//! of every attention of diffusers' UNet (tiny SD1), from `.pt` files written as A1111's
//! `Hypernetwork.save` writes them: ReLU without layer norm; Hardswish with LayerNorms and
//! dropout (which shifts the `Sequential` indices) and an activated output; the oldest
//! `linear1`/`linear2` layout; two chained. Then bad files.

mod common;

use burn::tensor::{Device, Tensor};
use common::{ROOT, fixture_tensor, relative_error};
use sd_core::StableDiffusion;
use sd_core::hypernetwork::{
    ActiveHypernetwork, HypernetworkError, HypernetworkFile, HypernetworkLibrary,
};
use serde::Deserialize;

/// The networks' golden bound (max-relative). Measured 2026-12-07: 1.0e-6 to 1.8e-6.
const TOLERANCE: f32 = 1e-4;

#[derive(Deserialize)]
struct Cases {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    name: String,
    key: String,
    hypernetworks: Vec<Applied>,
}

#[derive(Deserialize)]
struct Applied {
    file: String,
    multiplier: f32,
}

const FIXTURE: &str = "hypernetwork/reference.safetensors";

fn unet_output(model: &StableDiffusion) -> Tensor<4> {
    let device = model.device();
    let tensor = |key: &str| fixture_tensor(FIXTURE, key);
    model
        .unet
        .forward(
            Tensor::from_data(tensor("sample"), device),
            Tensor::from_data(tensor("timesteps"), device),
            Tensor::from_data(tensor("context"), device),
        )
        .expect("UNet runs")
}

fn reference(key: &str) -> Tensor<4> {
    Tensor::from_data(fixture_tensor(FIXTURE, key), &Device::default())
}

#[test]
fn hypernetworks_change_the_unet_as_a1111s_do() {
    let cases: Cases = serde_json::from_str(
        &std::fs::read_to_string(format!("{ROOT}/fixtures/hypernetwork/cases.json"))
            .expect("cases"),
    )
    .expect("json");
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &Device::default())
        .expect("model");
    let mut report = Vec::new();
    for case in cases.cases {
        let files: Vec<HypernetworkFile> = case
            .hypernetworks
            .iter()
            .map(|a| {
                HypernetworkFile::read(format!("{ROOT}/fixtures/hypernetwork/{}", a.file))
                    .unwrap_or_else(|e| panic!("{}: {e}", a.file))
            })
            .collect();
        let active: Vec<ActiveHypernetwork<'_>> = files
            .iter()
            .zip(&case.hypernetworks)
            .map(|(file, a)| ActiveHypernetwork {
                file,
                multiplier: a.multiplier,
            })
            .collect();
        let styled = model.with_hypernetworks(&active);
        let err = relative_error(unet_output(&styled), reference(&case.key));
        report.push(format!("{}: {err:.2e}", case.name));
        assert!(err <= TOLERANCE, "{}: off by {err:.3e}", case.name);
    }
    // The loaded model is untouched.
    let err = relative_error(unet_output(&model), reference("base"));
    assert!(err <= TOLERANCE, "base after applying: off by {err:.3e}");
    eprintln!("{}", report.join("\n"));
}

#[test]
fn the_files_settings_are_read() {
    let file = HypernetworkFile::read(format!("{ROOT}/fixtures/hypernetwork/hn-norm-dropout.pt"))
        .expect("reads");
    assert_eq!(file.name, "hn-norm-dropout");
    assert_eq!(file.layer_structure, [1.0, 1.5, 2.0, 1.0]);
    assert_eq!(file.activation_func.as_deref(), Some("swish"));
    assert!(file.layer_norm && file.activate_output);
    assert_eq!(file.dropout_structure, [0.0, 0.1, 0.05, 0.0]);
    assert_eq!(file.modules.keys().copied().collect::<Vec<_>>(), [16, 32]);
    let old =
        HypernetworkFile::read(format!("{ROOT}/fixtures/hypernetwork/hn-old.pt")).expect("reads");
    assert_eq!(old.layer_structure, [1.0, 2.0, 1.0]);
    assert_eq!(old.modules.keys().copied().collect::<Vec<_>>(), [32]);
}

/// `<hypernet:name:multiplier>` from a folder: applied as by hand; unknown names and bad
/// multipliers skipped with the reason.
#[test]
fn prompt_tags_activate_hypernetworks_from_a_folder() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::copy(
        format!("{ROOT}/fixtures/hypernetwork/hn-plain.pt"),
        dir.path().join("plain.pt"),
    )
    .expect("copy");
    let library = HypernetworkLibrary::scan(dir.path()).expect("scan");
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &Device::default())
        .expect("model");
    let (styled, skipped) = library.activate(
        &model,
        "a cat <hypernet:plain:0.7> <hypernet:gone:1> <hypernet:plain:lots>",
    );
    let reasons: Vec<(&str, &str)> = skipped
        .iter()
        .map(|s| (s.name.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert_eq!(reasons[0], ("gone", "not found"));
    assert!(reasons[1].1.contains("lots"));
    let err = relative_error(unet_output(&styled), reference("out.plain"));
    assert!(err <= TOLERANCE, "off by {err:.3e}");
}

#[test]
fn bad_files_are_typed_errors_naming_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let junk = dir.path().join("junk.pt");
    std::fs::write(&junk, b"definitely not a pickle").expect("write");
    assert!(matches!(
        HypernetworkFile::read(&junk),
        Err(HypernetworkError::TorchFile(_))
    ));
    // A torch file that is not a hypernetwork (an embedding), and a hostile pickle.
    let pt = std::path::PathBuf::from(format!("{ROOT}/fixtures/torch_file/embedding_dict.pt"));
    assert!(matches!(
        HypernetworkFile::read(format!("{ROOT}/fixtures/torch_file/malicious.pt")),
        Err(HypernetworkError::TorchFile(_))
    ));
    match HypernetworkFile::read(&pt) {
        Err(HypernetworkError::Layout { path, .. }) => assert_eq!(path, pt),
        other => panic!("{other:?}"),
    }
}

/// A1111's "Create hypernetwork": settings checked, weights drawn as its initialisations
/// draw them, the file written as `Hypernetwork.save` writes it and read back unchanged
/// (also checked by hand with `torch.load(weights_only=True)` and A1111's loader,
/// 2026-12-07), and usable at once.
#[test]
fn created_hypernetworks_write_read_back_and_apply() {
    use sd_core::hypernetwork::{HypernetworkSettings, WeightInit};

    let dir = tempfile::tempdir().expect("tempdir");
    let settings = HypernetworkSettings {
        sizes: vec![16, 32],
        layer_structure: vec![1.0, 1.5, 2.0, 1.0],
        activation_func: "relu".into(),
        weight_init: WeightInit::KaimingNormal,
        layer_norm: true,
        use_dropout: true,
        dropout_structure: vec![0.0, 0.3, 0.1, 0.0],
    };
    let created = HypernetworkFile::new_random("made", &settings, 7).expect("creates");
    let path = dir.path().join("made.pt");
    created.write(&path).expect("writes");
    let read = HypernetworkFile::read(&path).expect("reads back");
    assert_eq!(read.modules, created.modules);
    assert_eq!(read.layer_structure, settings.layer_structure);
    assert_eq!(read.dropout_structure, settings.dropout_structure);
    assert_eq!(read.weight_init.as_deref(), Some("KaimingNormal"));
    assert!(read.layer_norm && read.use_dropout && !read.activate_output);
    // Kaiming normal: std √2 / √fan_in; zero biases.
    let first = &read.modules[&32][0][0].linear;
    let n = first.weight.len() as f64;
    let std = (first
        .weight
        .iter()
        .map(|&w| f64::from(w).powi(2))
        .sum::<f64>()
        / n)
        .sqrt();
    let expected = 2f64.sqrt() / 32f64.sqrt();
    assert!(
        (std / expected - 1.0).abs() < 0.1,
        "std {std} against {expected}"
    );
    assert!(first.bias.iter().all(|&b| b == 0.0));

    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &Device::default())
        .expect("model");
    let styled = model.with_hypernetworks(&[ActiveHypernetwork {
        file: &read,
        multiplier: 1.0,
    }]);
    let change = relative_error(unet_output(&styled), reference("base"));
    assert!(
        change > 1e-3,
        "a new hypernetwork changed nothing ({change:.2e})"
    );

    // A1111's refusals.
    for (bad, why) in [
        (
            HypernetworkSettings {
                layer_structure: vec![1.0, 2.0],
                ..HypernetworkSettings::default()
            },
            "end",
        ),
        (
            HypernetworkSettings {
                layer_structure: vec![2.0, 1.0],
                ..HypernetworkSettings::default()
            },
            "start",
        ),
        (
            HypernetworkSettings {
                activation_func: "nope".into(),
                ..HypernetworkSettings::default()
            },
            "activation",
        ),
        (
            HypernetworkSettings {
                sizes: vec![],
                ..HypernetworkSettings::default()
            },
            "sizes",
        ),
        (
            HypernetworkSettings {
                layer_structure: vec![1.0, 1e6, 1.0],
                ..HypernetworkSettings::default()
            },
            "huge",
        ),
        (
            HypernetworkSettings {
                layer_structure: vec![1.0, 1e-6, 1.0],
                ..HypernetworkSettings::default()
            },
            "no width",
        ),
        (
            HypernetworkSettings {
                use_dropout: true,
                dropout_structure: vec![0.0, 1.5, 0.0],
                ..HypernetworkSettings::default()
            },
            "dropout",
        ),
    ] {
        let err = HypernetworkFile::new_random("bad", &bad, 0).expect_err(why);
        assert!(
            matches!(err, HypernetworkError::Layout { .. }),
            "{why}: {err}"
        );
    }
}

/// A file whose layer structure does not run from 1 to 1 (its tensors shaped to match) is
/// refused when read, not left to fail in the UNet.
#[test]
fn a_structure_not_ending_at_one_is_refused() {
    use sd_core::hypernetwork::HypernetworkSettings;

    let dir = tempfile::tempdir().expect("tempdir");
    let settings = HypernetworkSettings {
        sizes: vec![16],
        ..HypernetworkSettings::default()
    };
    let mut file = HypernetworkFile::new_random("odd", &settings, 1).expect("creates");
    file.layer_structure = vec![1.0, 2.0, 2.0];
    for layers in file.modules.values_mut().flatten() {
        let last = layers.last_mut().expect("a layer");
        last.linear.outputs = 32;
        last.linear.weight = vec![0.0; 32 * 32];
        last.linear.bias = vec![0.0; 32];
    }
    let path = dir.path().join("odd.pt");
    file.write(&path).expect("writes");
    assert!(matches!(
        HypernetworkFile::read(&path),
        Err(HypernetworkError::Layout { .. })
    ));
}

#[test]
fn dropout_acts_while_training_and_never_in_use() {
    use sd_core::hypernetwork::{HypernetworkSettings, TrainableHypernetwork, WeightInit};

    let device = Device::default().autodiff();
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &device).expect("model");
    let settings = HypernetworkSettings {
        sizes: vec![16, 32],
        activation_func: "relu".into(),
        weight_init: WeightInit::KaimingNormal,
        use_dropout: true,
        dropout_structure: vec![0.0, 0.5, 0.0],
        ..HypernetworkSettings::default()
    };
    let file = HypernetworkFile::new_random("dropped", &settings, 5).expect("creates");
    let values = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32");
    // In use (a prompt's tag, previews): no dropout, the same output every time.
    let used = model.with_hypernetworks(&[ActiveHypernetwork {
        file: &file,
        multiplier: 1.0,
    }]);
    assert_eq!(values(unet_output(&used)), values(unet_output(&used)));
    // Training: a new mask each pass, as torch's Dropout in training mode.
    let training = TrainableHypernetwork::new(&file, &device).apply(&model);
    let (a, b) = (
        values(unet_output(&training)),
        values(unet_output(&training)),
    );
    assert_ne!(a, b);
    // Without a dropout structure, training is deterministic too.
    let plain = HypernetworkFile::new_random(
        "plain",
        &HypernetworkSettings {
            dropout_structure: vec![0.0, 0.0, 0.0],
            use_dropout: false,
            ..settings
        },
        5,
    )
    .expect("creates");
    let training = TrainableHypernetwork::new(&plain, &device).apply(&model);
    assert_eq!(
        values(unet_output(&training)),
        values(unet_output(&training))
    );
}

#[test]
fn safetensors_files_hold_everything_a_pt_does() {
    use sd_core::hypernetwork::{HypernetworkSettings, WeightInit};

    let dir = tempfile::tempdir().expect("tempdir");
    let settings = HypernetworkSettings {
        sizes: vec![16, 32],
        layer_structure: vec![1.0, 1.5, 2.0, 1.0],
        activation_func: "hardswish".into(),
        weight_init: WeightInit::XavierNormal,
        layer_norm: true,
        use_dropout: true,
        dropout_structure: vec![0.0, 0.3, 0.1, 0.0],
    };
    let mut created = HypernetworkFile::new_random("both", &settings, 9).expect("creates");
    created.step = Some(1234);
    created.sd_checkpoint = Some("0123456789".into());
    created.sd_checkpoint_name = Some("v1-5".into());
    let pt = dir.path().join("both.pt");
    let st = dir.path().join("both.safetensors");
    created.write(&pt).expect("writes .pt");
    created.write(&st).expect("writes .safetensors");
    let (from_pt, from_st) = (
        HypernetworkFile::read(&pt).expect("reads .pt"),
        HypernetworkFile::read(&st).expect("reads .safetensors"),
    );
    assert_eq!(from_st.modules, from_pt.modules);
    assert_eq!(from_st.modules, created.modules);
    assert_eq!(
        (
            &from_st.name,
            from_st.step,
            &from_st.layer_structure,
            &from_st.dropout_structure
        ),
        (
            &from_pt.name,
            from_pt.step,
            &from_pt.layer_structure,
            &from_pt.dropout_structure
        )
    );
    assert_eq!(
        (
            &from_st.activation_func,
            from_st.layer_norm,
            from_st.activate_output,
            from_st.use_dropout
        ),
        (
            &from_pt.activation_func,
            from_pt.layer_norm,
            from_pt.activate_output,
            from_pt.use_dropout
        )
    );
    assert_eq!(from_st.weight_init, from_pt.weight_init);
    assert_eq!(from_st.sd_checkpoint.as_deref(), Some("0123456789"));
    assert_eq!(from_st.sd_checkpoint_name.as_deref(), Some("v1-5"));

    // The same UNet output from either file, and the folder lists both by name.
    let model = StableDiffusion::load(format!("{ROOT}/fixtures/tiny-sd1"), &Device::default())
        .expect("model");
    let output = |file: &HypernetworkFile| {
        unet_output(&model.with_hypernetworks(&[ActiveHypernetwork {
            file,
            multiplier: 0.7,
        }]))
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32")
    };
    assert_eq!(output(&from_st), output(&from_pt));
    std::fs::rename(&st, dir.path().join("other.safetensors")).expect("rename");
    let library = HypernetworkLibrary::scan(dir.path()).expect("scan");
    let names: Vec<&str> = library.files().iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["both", "other"]);

    // Safetensors that are not a hypernetwork: a typed error naming the file.
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, b"not safetensors at all").expect("write");
    let error = HypernetworkFile::read(&bad).expect_err("refused");
    assert!(matches!(error, HypernetworkError::Layout { .. }), "{error}");
    assert!(error.to_string().contains("bad.safetensors"), "{error}");
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &[0u8; 8])
        .expect("view");
    let stray = dir.path().join("stray.safetensors");
    std::fs::write(
        &stray,
        safetensors::serialize([("lora_unet_x.lora_down.weight", view)], None).expect("bytes"),
    )
    .expect("write");
    let error = HypernetworkFile::read(&stray).expect_err("refused");
    assert!(error.to_string().contains("lora_unet_x"), "{error}");
}

#[test]
fn a_dropout_probability_outside_0_to_1_is_refused() {
    use sd_core::hypernetwork::HypernetworkSettings;

    let dir = tempfile::tempdir().expect("tempdir");
    let mut file = HypernetworkFile::new_random(
        "bad",
        &HypernetworkSettings {
            sizes: vec![16],
            ..HypernetworkSettings::default()
        },
        1,
    )
    .expect("creates");
    for p in [1.0, 1.5, -0.1, f64::NAN] {
        file.dropout_structure = vec![0.0, p, 0.0];
        file.use_dropout = true;
        for ext in ["pt", "safetensors"] {
            let path = dir.path().join(format!("bad.{ext}"));
            file.write(&path).expect("writes");
            let error = HypernetworkFile::read(&path).expect_err("refused");
            // (JSON has no NaN: the safetensors metadata holds `null` there, and the layout
            // it then describes does not fit the tensors.)
            let named = ext == "pt" || !p.is_nan();
            assert!(
                matches!(error, HypernetworkError::Layout { .. })
                    && (!named || error.to_string().contains("dropout")),
                "{p} {ext}: {error}"
            );
        }
    }
}
