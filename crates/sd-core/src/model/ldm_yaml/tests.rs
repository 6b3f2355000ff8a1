//! Unit tests of the LDM yaml reader: where the config is found, hostile documents, field
//! paths in errors.

use super::*;

#[test]
fn finds_the_yaml_before_the_folder_and_the_explicit_config_before_both() {
    let dir = tempfile::tempdir().expect("temp dir");
    let checkpoint = dir.path().join("model.v2.safetensors");
    assert_eq!(single_file_config(&checkpoint, None), None);
    let folder = dir.path().join("model.v2");
    std::fs::create_dir_all(folder.join("unet")).expect("mkdir");
    std::fs::write(folder.join("unet").join("config.json"), "{}").expect("write");
    assert_eq!(
        single_file_config(&checkpoint, None),
        Some(SingleFileConfig::Folder(folder.clone()))
    );
    // A1111: os.path.splitext(checkpoint)[0] + ".yaml"
    let yaml = dir.path().join("model.v2.yaml");
    std::fs::write(&yaml, "model: {}").expect("write");
    assert_eq!(
        single_file_config(&checkpoint, None),
        Some(SingleFileConfig::Yaml(yaml.clone()))
    );
    assert_eq!(
        single_file_config(&checkpoint, Some(&folder)),
        Some(SingleFileConfig::Folder(folder))
    );
    let other = dir.path().join("other.YML");
    assert_eq!(
        single_file_config(&checkpoint, Some(&other)),
        Some(SingleFileConfig::Yaml(other))
    );
}

#[test]
fn hostile_documents_are_refused_quickly() {
    // Deep nesting (serde_yaml_ng stops at depth 128) and an alias bomb (it caps
    // repetitions) are parse errors, not stack overflows or hangs.
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let bomb = (0..10).fold(
        String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"),
        |doc, i| {
            let list = vec![format!("*a{i}"); 10].join(", ");
            format!("{doc}a{}: &a{} [{list}]\n", i + 1, i + 1)
        },
    );
    for text in [deep, bomb] {
        let err = parse(&text, &TensorShapes::new()).expect_err("hostile");
        assert!(
            err.reason.contains("not valid YAML") || err.reason.contains("missing"),
            "{err:?}"
        );
    }
}

#[test]
fn a_wrong_type_names_the_field_path() {
    let yaml = "model:\n  target: ldm.models.diffusion.ddpm.LatentDiffusion\n  params:\n    \
                timesteps: many\n";
    let err = parse(yaml, &TensorShapes::new()).expect_err("wrong type");
    assert!(err.reason.contains("`model.params.timesteps`"), "{err:?}");
}
