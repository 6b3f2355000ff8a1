//! The presets against their upstream JSON, and bad configs refused with the field named.

use super::*;

#[test]
fn sd21_preset_matches_its_upstream_json() {
    // The keys of stabilityai/stable-diffusion-2-1's unet/config.json that differ from
    // diffusers' defaults.
    let json = r#"{"_class_name": "UNet2DConditionModel", "_diffusers_version": "0.10.0.dev0",
        "act_fn": "silu", "attention_head_dim": [5, 10, 20, 20], "block_out_channels":
        [320, 640, 1280, 1280], "center_input_sample": false, "cross_attention_dim": 1024,
        "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
        "CrossAttnDownBlock2D", "DownBlock2D"], "downsample_padding": 1, "dual_cross_attention":
        false, "flip_sin_to_cos": true, "freq_shift": 0, "in_channels": 4, "layers_per_block": 2,
        "mid_block_scale_factor": 1, "norm_eps": 1e-05, "norm_num_groups": 32,
        "num_class_embeds": null, "only_cross_attention": false, "out_channels": 4,
        "sample_size": 96, "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D",
        "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"], "upcast_attention": true,
        "use_linear_projection": true}"#;
    let config: UNetConfig = serde_json::from_str(json).expect("valid json");
    assert_eq!(config, UNetConfig::sd21());
    assert_eq!(
        config.heads_per_block().expect("valid"),
        vec![5, 10, 20, 20]
    );
    config.validate().expect("supported");
}

fn field_of(config: &UNetConfig) -> &'static str {
    match config.validate() {
        Err(UNetError::Config { field, .. }) => field,
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn the_parameter_bound_is_close_above_the_real_count() {
    // diffusers: sum(p.numel() for p in UNet2DConditionModel(**sd15).parameters()).
    const SD15_PARAMETERS: u128 = 859_520_964;
    for config in [
        UNetConfig::sd15(),
        UNetConfig::sd15_inpainting(),
        UNetConfig::sd21(),
    ] {
        config.validate().expect("valid");
        let bound = config.parameter_bound().expect("bound");
        assert!(
            (SD15_PARAMETERS..SD15_PARAMETERS * 8 / 5).contains(&bound),
            "{bound}"
        );
    }
}

#[test]
fn zero_and_absurd_sizes_are_refused_before_any_allocation() {
    let sd15 = UNetConfig::sd15;
    let cases = [
        (
            UNetConfig {
                layers_per_block: 100_000_000,
                ..sd15()
            },
            "layers_per_block",
        ),
        (
            UNetConfig {
                in_channels: 0,
                ..sd15()
            },
            "in_channels",
        ),
        (
            UNetConfig {
                out_channels: usize::MAX,
                ..sd15()
            },
            "out_channels",
        ),
        (
            UNetConfig {
                cross_attention_dim: 0,
                ..sd15()
            },
            "cross_attention_dim",
        ),
        (
            UNetConfig {
                cross_attention_dim: 1 << 40,
                ..sd15()
            },
            "cross_attention_dim",
        ),
        (
            UNetConfig {
                time_embedding_dim: Some(1 << 40),
                ..sd15()
            },
            "time_embedding_dim",
        ),
        (
            UNetConfig {
                conv_in_kernel: 1_000_001,
                ..sd15()
            },
            "conv_in_kernel",
        ),
        (
            UNetConfig {
                downsample_padding: 1 << 30,
                ..sd15()
            },
            "downsample_padding",
        ),
        (
            UNetConfig {
                block_out_channels: vec![320, 640, 1 << 40, 1280],
                ..sd15()
            },
            "block_out_channels",
        ),
        (
            UNetConfig {
                block_out_channels: vec![usize::MAX; 4],
                ..sd15()
            },
            "block_out_channels",
        ),
        (
            UNetConfig {
                block_out_channels: vec![96, 640, 1280, 1280],
                norm_num_groups: 3,
                heads: PerBlock::All(1),
                ..sd15()
            },
            "norm_num_groups",
        ),
        (
            UNetConfig {
                block_out_channels: vec![33, 66, 66, 66],
                norm_num_groups: 3,
                heads: PerBlock::All(3),
                ..sd15()
            },
            "block_out_channels",
        ),
        (
            UNetConfig {
                heads: PerBlock::All(0),
                ..sd15()
            },
            "attention_head_dim",
        ),
        (
            UNetConfig {
                heads: PerBlock::All(7),
                ..sd15()
            },
            "attention_head_dim",
        ),
        (
            UNetConfig {
                heads: PerBlock::All(1 << 20),
                ..sd15()
            },
            "attention_head_dim",
        ),
        (
            UNetConfig {
                transformer_layers_per_block: PerBlock::All(1 << 30),
                ..sd15()
            },
            "transformer_layers_per_block",
        ),
        (
            UNetConfig {
                down_block_types: vec![DownBlockType::DownBlock2D; 100],
                up_block_types: vec![UpBlockType::UpBlock2D; 100],
                block_out_channels: vec![32; 100],
                ..sd15()
            },
            "down_block_types",
        ),
        (
            UNetConfig {
                norm_eps: f64::NAN,
                ..sd15()
            },
            "norm_eps",
        ),
        (
            UNetConfig {
                mid_block_scale_factor: 0.0,
                ..sd15()
            },
            "mid_block_scale_factor",
        ),
        // Every field under its cap; together 2^14-wide blocks with 64 resnets each.
        (
            UNetConfig {
                block_out_channels: vec![MAX_CHANNELS; 4],
                layers_per_block: MAX_LAYERS_PER_BLOCK,
                ..sd15()
            },
            "block_out_channels",
        ),
    ];
    for (config, field) in cases {
        assert_eq!(field_of(&config), field, "{config:?}");
    }
}

#[test]
fn num_attention_heads_takes_precedence() {
    let config = UNetConfig {
        num_attention_heads: Some(PerBlock::All(4)),
        ..UNetConfig::sd15()
    };
    assert_eq!(config.heads_per_block().expect("valid"), vec![4; 4]);
}

#[test]
fn unsupported_configs_are_named() {
    let config = UNetConfig {
        class_embed_type: Some(serde_json::Value::String("timestep".into())),
        ..UNetConfig::sd15()
    };
    let err = config.validate().expect_err("unsupported");
    assert!(err.to_string().contains("class_embed_type"), "{err}");
    let config = UNetConfig {
        heads: PerBlock::Each(vec![5, 10]),
        ..UNetConfig::sd21()
    };
    let err = config.validate().expect_err("wrong length");
    assert!(err.to_string().contains("attention_head_dim"), "{err}");
}
