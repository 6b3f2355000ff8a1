//! A new hypernetwork, as A1111's "Create hypernetwork" (Train tab).
//!
//! ```text
//! sdti create-hypernetwork --name anime --sizes 768,320,640,1280 \
//!     --layer-structure "1, 2, 1" --activation relu --weight-init KaimingNormal \
//!     --output-dir models/hypernetworks
//! ```
//!
//! The file is A1111's `.pt` (it loads in A1111 and with `torch.load(weights_only=True)`);
//! `<hypernet:anime:1>` in a prompt uses it; `sdti train-hypernetwork --name anime` trains it.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use sd_textual_inversion::create::sanitized_name;
use sd_textual_inversion::sd_core::hypernetwork::{
    HypernetworkFile, HypernetworkSettings, WeightInit,
};
use sd_textual_inversion::sd_core::sd_prompt::python_number::python_float;

/// Create a hypernetwork (A1111's Create hypernetwork).
#[derive(Parser)]
pub struct Args {
    /// Its name (the file is `<name>.pt`; A1111's character rules).
    #[arg(long)]
    name: String,
    /// Context widths to make modules for (default: 768, 320, 640, 1280, A1111's, for SD
    /// 1.x; SD 2.x's text is 1024 wide). With `--model` and no `--sizes`: every attention
    /// width of that model.
    #[arg(long, value_delimiter = ',')]
    sizes: Option<Vec<usize>>,
    /// A checkpoint whose attention widths are the default `--sizes`.
    #[arg(long)]
    model: Option<PathBuf>,
    /// Layer widths relative to the context's, from 1 to 1.
    #[arg(long, default_value = "1, 2, 1")]
    layer_structure: String,
    /// Activation after each layer but the last (`linear`: none).
    #[arg(long, default_value = "linear")]
    activation: String,
    /// Weight initialisation: Normal, XavierUniform, XavierNormal, KaimingUniform,
    /// KaimingNormal.
    #[arg(long, default_value = "Normal")]
    weight_init: String,
    /// A LayerNorm after each layer.
    #[arg(long)]
    layer_norm: bool,
    /// Dropout while training, with `--dropout-structure`.
    #[arg(long, alias = "dropout")]
    use_dropout: bool,
    /// A dropout probability per layer, the last 0.
    #[arg(long, default_value = "0, 0, 0")]
    dropout_structure: String,
    /// The seed of the initial weights.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Replace an existing file of the same name.
    #[arg(long)]
    overwrite: bool,
    /// Where the `.pt` goes.
    #[arg(long, default_value = "models/hypernetworks")]
    output_dir: PathBuf,
}

/// A comma-separated list of Python floats, as A1111's text boxes.
fn floats(flag: &str, text: &str) -> anyhow::Result<Vec<f64>> {
    text.split(',')
        .map(|item| {
            python_float(item).with_context(|| format!("{flag}: `{}` is not a number", item.trim()))
        })
        .collect()
}

/// Runs the command.
///
/// # Errors
/// Whatever stops it: the message names the flag or file at fault.
pub fn run(args: Args) -> anyhow::Result<()> {
    let name = sanitized_name(&args.name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let sizes = match (args.sizes, &args.model) {
        (Some(sizes), _) => sizes,
        (None, Some(model)) => {
            let device = sd_textual_inversion::sd_core::DeviceChoice::Cpu.device()?;
            let model = sd_textual_inversion::sd_core::StableDiffusion::load(model, &device)?;
            model.hypernetwork_widths().into_iter().collect()
        }
        (None, None) => HypernetworkSettings::default().sizes,
    };
    let settings = HypernetworkSettings {
        sizes,
        layer_structure: floats("--layer-structure", &args.layer_structure)?,
        activation_func: args.activation,
        weight_init: WeightInit::parse(&args.weight_init).with_context(|| {
            format!(
                "--weight-init: `{}` is not one of {}",
                args.weight_init,
                WeightInit::NAMES.join(", ")
            )
        })?,
        layer_norm: args.layer_norm,
        use_dropout: args.use_dropout,
        dropout_structure: floats("--dropout-structure", &args.dropout_structure)?,
    };
    let path = args.output_dir.join(format!("{name}.pt"));
    if path.exists() && !args.overwrite {
        anyhow::bail!(
            "{}: already exists (pass --overwrite to replace it)",
            path.display()
        );
    }
    let hypernetwork = HypernetworkFile::new_random(&name, &settings, args.seed)?;
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("creating {}", args.output_dir.display()))?;
    hypernetwork.write(&path)?;
    println!("{}", path.display());
    Ok(())
}
